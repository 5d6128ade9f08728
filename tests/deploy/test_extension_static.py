"""Extensions' assets through the proxy configs that alias `/static` to `aperture static`.

`aperture static` prints the BokehJS directory only; Panel's assets and those of any packaged
BokehJS extension (`/static/extensions/<name>/...`) must still reach Aperture. Each test runs a
real nginx or Apache from `deploy/` in front of Aperture serving a Panel app and an app built on
the test extension package (`tests/apps/ext/pkgs`), opens the pages in Chromium through the
proxy, and checks that they render, that BokehJS came from the proxy's disk while the
extensions' assets came from Aperture (access logs), and that gzip, ETag and the `?v=` caching
survive the proxy. Behind a balancer, every instance serves the assets, whichever ran the app.
"""

from __future__ import annotations

import gzip
import re

import pytest

from tests.deploy.harness import (
    RELAY_KEY,
    RELAY_KEY_ENV,
    Deployment,
    ProxyProcess,
    Response,
    allow_origin,
    close_page,
    free_port,
    http_get,
    record_static,
    static_dir,
)
from tests.support.browser import BokehPage
from tests.support.servers import REPO_ROOT

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

EXT = REPO_ROOT / "tests" / "apps" / "ext"
APPS = (EXT / "panel_min.py", EXT / "ext_app.py")
ENV = {"PYTHONPATH": str(EXT / "pkgs")}
EXT_BUNDLE = "static/extensions/aperture_test_ext/aperture_test_ext.min.js"
# Outside `panel serve` Panel links its CSS on its CDN (as under bokeh serve): unreachable here.
PANEL_CDN = r"\(https://cdn\.holoviz\.org/panel/"
TEN_YEARS = 10 * 365 * 24 * 3600


def open_panel_app(page: BokehPage, url: str) -> None:
    page.open(url)
    root_type = page.page.evaluate("() => Bokeh.documents[0].roots()[0].type")
    assert root_type.startswith("panel.models."), root_type
    page.assert_no_errors(ignore=(PANEL_CDN,))


def open_extension_app(page: BokehPage, url: str) -> None:
    page.open(url)
    marked = page.page.evaluate(
        "() => Bokeh.index.find_one(Bokeh.documents[0].get_model_by_name('ext')).el.dataset.extension"
    )
    assert marked == "aperture_test_ext"
    page.assert_no_errors()


def extension_urls(seen: dict[str, dict[str, str]]) -> list[str]:
    urls = [url for url in seen if "/static/extensions/" in url]
    assert any(re.search(r"/static/extensions/panel/panel\.min\.js\?v=[0-9a-f]{64}$", u) for u in urls), seen
    assert any(u.endswith(EXT_BUNDLE) for u in urls), seen
    return urls


def bokehjs_urls(seen: dict[str, dict[str, str]]) -> list[str]:
    urls = [url for url in seen if re.search(r"/static/js/bokeh(-\w+)?\.min\.js\?v=", url)]
    assert len(urls) >= 2, seen
    return urls


def assert_cached_and_gzipped(proxied: Response, direct: Response) -> None:
    """What Aperture sent (gzip copy, strong ETag, ten years for ?v=) arrived through the proxy."""
    assert proxied.status == 200 and direct.status == 200
    assert proxied.headers["Content-Encoding"] == "gzip", proxied.headers
    assert gzip.decompress(proxied.body) == gzip.decompress(direct.body)
    assert proxied.headers["Content-Type"].startswith("text/javascript"), proxied.headers
    assert proxied.headers["ETag"] == direct.headers["ETag"]
    assert f"max-age={TEN_YEARS}" in proxied.headers["Cache-Control"], proxied.headers


def panel_min_url(seen: dict[str, dict[str, str]]) -> str:
    """The path and query of the page's own link to panel.min.js."""
    url = next(u for u in seen if re.search(r"/panel\.min\.js\?v=", u))
    return "/" + url.split("/", 3)[3]


# -- nginx -------------------------------------------------------------------------------------------


def test_nginx_static_alias_leaves_extensions_to_aperture(
    deployment: Deployment, bokeh_page: BokehPage
) -> None:
    port = free_port()
    server = deployment.aperture([allow_origin(port)], apps=APPS, env=ENV)
    nginx = deployment.nginx(
        "nginx/static-alias.conf",
        [port],
        listen=f"127.0.0.1:{port}",
        backend=f"127.0.0.1:{server.port}",
        static_dir=static_dir(),
    )
    base = f"http://127.0.0.1:{port}"
    seen = record_static(bokeh_page)
    open_extension_app(bokeh_page, f"{base}/ext_app")
    open_panel_app(bokeh_page, f"{base}/panel_min")

    for url in bokehjs_urls(seen):
        assert seen[url].get("x-static-served-by") == "nginx", (url, seen[url])
    for url in extension_urls(seen):
        assert "x-static-served-by" not in seen[url], (url, seen[url])
    upstream = re.escape(f"upstream=127.0.0.1:{server.port}")
    nginx.wait_for_access(rf'"GET /static/extensions/panel/panel\.min\.js\?v=\w+ HTTP/1.1" 200 .*{upstream}')
    nginx.wait_for_access(rf'"GET /{EXT_BUNDLE} HTTP/1.1" 200 .*{upstream}')
    assert all("upstream=-" in line for line in nginx.wait_for_access(r'"GET /static/js/'))

    path = panel_min_url(seen)
    assert_cached_and_gzipped(
        http_get(base + path, headers={"Accept-Encoding": "gzip"}),
        http_get(server.url(path), headers={"Accept-Encoding": "gzip"}),
    )
    assert http_get(f"{base}/static/extensions/nosuch/nosuch.min.js").status == 404
    assert http_get(f"{base}/static/extensions/panel/%2e%2e/__init__.py").status in (400, 403, 404)


# -- Apache ------------------------------------------------------------------------------------------


def test_apache_prefix_alias_leaves_extensions_to_aperture(
    deployment: Deployment, bokeh_page: BokehPage
) -> None:
    port = free_port()
    server = deployment.aperture([allow_origin(port), "--prefix", "/myapp"], apps=APPS, env=ENV)
    apache = deployment.apache(
        "apache/myapp-prefix.conf",
        [port],
        listen=f"127.0.0.1:{port}",
        backend=f"127.0.0.1:{server.port}",
        static_dir=static_dir(),
    )
    base = f"http://127.0.0.1:{port}"
    seen = record_static(bokeh_page)
    open_extension_app(bokeh_page, f"{base}/myapp/ext_app")
    open_panel_app(bokeh_page, f"{base}/myapp/panel_min")
    close_page(bokeh_page)

    for url in bokehjs_urls(seen):
        assert "/myapp/static/js/" in url and seen[url].get("x-static-served-by") == "apache", (
            url,
            seen[url],
        )
    for url in extension_urls(seen):
        assert "/myapp/static/extensions/" in url and "x-static-served-by" not in seen[url], (url, seen[url])
    apache.wait_for_access(
        r'"GET /myapp/static/extensions/panel/panel\.min\.js\?v=\w+ HTTP/1.1" 200 .*proxy-server'
    )
    apache.wait_for_access(rf'"GET /myapp/{EXT_BUNDLE} HTTP/1.1" 200 .*proxy-server')
    assert not any("proxy-server" in line for line in apache.wait_for_access(r'"GET /myapp/static/js/'))

    path = panel_min_url(seen)
    assert_cached_and_gzipped(
        http_get(base + path, headers={"Accept-Encoding": "gzip"}),
        http_get(server.url(path), headers={"Accept-Encoding": "gzip"}),
    )
    assert http_get(f"{base}/myapp/static/extensions/nosuch/nosuch.min.js").status == 404


def test_apache_balancer_any_instance_serves_the_extensions(
    deployment: Deployment, bokeh_page: BokehPage
) -> None:
    port = free_port()
    env = {**ENV, RELAY_KEY_ENV: RELAY_KEY}
    servers = [deployment.aperture([allow_origin(port)], apps=APPS, env=env) for _ in range(3)]
    apache = deployment.apache(
        "apache/balancer.conf",
        [port],
        listen=f"127.0.0.1:{port}",
        static_dir=static_dir(),
        **{f"backend{i}": f"127.0.0.1:{server.port}" for i, server in enumerate(servers, 1)},
    )
    base = f"http://127.0.0.1:{port}"
    seen = record_static(bokeh_page)
    open_extension_app(bokeh_page, f"{base}/ext_app")
    open_panel_app(bokeh_page, f"{base}/panel_min")  # one instance runs the app, imports Panel
    close_page(bokeh_page)
    for url in bokehjs_urls(seen):
        assert seen[url].get("x-static-served-by") == "apache", (url, seen[url])
    extension_urls(seen)

    path = panel_min_url(seen)
    for _ in range(9):  # bybusyness spreads these over all three instances
        reply = http_get(base + path, headers={"Accept-Encoding": "gzip"})
        assert reply.status == 200 and reply.headers["Content-Encoding"] == "gzip"
        assert http_get(f"{base}/{EXT_BUNDLE}").status == 200
    members = served_by(apache, r"/static/extensions/panel/panel\.min\.js")
    assert members == {f"http://127.0.0.1:{server.port}" for server in servers}, members


def served_by(apache: ProxyProcess, path_re: str) -> set[str]:
    """The balancer members whose 200 answers to ``path_re`` Apache logged."""
    lines = apache.wait_for_access(rf'"GET {path_re}\S* HTTP/1.1" 200 ', count=9)
    return {m.group(1) for line in lines if (m := re.search(r"worker=(\S+)$", line))}

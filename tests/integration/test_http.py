"""HTTP endpoints: page, index, prefix, metadata, autoload.js, static files, favicon."""

from __future__ import annotations

import re
import urllib.error
import urllib.request

import pytest

APPS = "tests/apps"


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


def get(url: str, headers: dict[str, str] | None = None, method: str = "GET") -> Response:
    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with opener.open(request, timeout=20) as r:
            return Response(r.status, dict(r.headers), r.read())
    except urllib.error.HTTPError as e:
        with e:
            return Response(e.code, dict(e.headers), e.read())


@pytest.fixture(scope="module")
def two_apps(module_server_factory):
    return module_server_factory([f"{APPS}/demo.py", f"{APPS}/ticker.py"], ["--prefix", "pfx/"])


@pytest.fixture(scope="module")
def one_app(module_server_factory):
    return module_server_factory([f"{APPS}/demo.py"])


def test_app_page_embeds_a_token_and_versioned_assets(one_app):
    r = get(one_app.url("/demo"))
    assert r.status == 200
    assert r.headers["Content-Type"] == "text/html"
    assert "<title>demo</title>" in r.text
    assert re.search(r'"token":"[A-Za-z0-9_.-]+"', r.text)
    assert '"use_for_title":true' in r.text
    scripts = re.findall(r'<script src="([^"]+)"', r.text)
    assert [s.split("?")[0] for s in scripts] == [
        f"/static/js/{name}.min.js"
        for name in ("bokeh", "bokeh-gl", "bokeh-widgets", "bokeh-tables", "bokeh-mathjax")
    ]
    assert all(re.search(r"\?v=[0-9a-f]{128}$", s) for s in scripts)
    assert get(one_app.url("/demo/")).status == 200
    assert get(one_app.url("/demo//")).status == 404


def test_page_rejects_post_and_head(one_app):
    assert get(one_app.url("/demo"), method="POST").status == 405


def test_single_app_index_redirects(one_app):
    r = get(one_app.url("/"))
    assert r.status == 302 and r.headers["Location"] == "/demo"


def test_prefixed_index_lists_apps(two_apps):
    r = get(two_apps.url("/pfx/"))
    assert r.status == 200
    assert '<a href="/pfx/demo">demo</a>' in r.text and '<a href="/pfx/ticker">ticker</a>' in r.text
    assert get(two_apps.url("/pfx")).status == 200
    assert get(two_apps.url("/pfx/demo")).status == 200
    assert get(two_apps.url("/demo")).status == 404


def test_favicon_is_never_prefixed(two_apps):
    r = get(two_apps.url("/favicon.ico"))
    assert r.status == 200 and r.headers["Content-Type"] == "image/x-icon" and len(r.body) > 1000
    assert get(two_apps.url("/pfx/favicon.ico")).status == 404


def test_metadata(two_apps):
    r = get(two_apps.url("/pfx/demo/metadata"))
    assert r.status == 200 and r.headers["Content-Type"] == "application/json"
    assert r.text == '{"url": "/demo", "data": {}}'


def test_autoload_js(two_apps):
    base = two_apps.url("/pfx/demo")
    r = get(
        f"{base}/autoload.js?bokeh-autoload-element=el1&bokeh-app-path=/pfx/demo&bokeh-absolute-url={base}"
    )
    assert r.status == 200 and r.headers["Content-Type"] == "application/javascript"
    assert '"elementid":"el1"' in r.text and '"token":' in r.text
    assert f"{two_apps.base_url}/pfx/static/js/bokeh.min.js?v=" in r.text
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    missing = get(f"{base}/autoload.js")
    assert missing.status == 400 and "bokeh-autoload-element" in missing.text
    bare = get(f"{base}/autoload.js?bokeh-autoload-element=x&resources=none")
    assert "bokeh.min.js" not in bare.text


def test_static_assets_are_cacheable_when_versioned(one_app):
    page = get(one_app.url("/demo")).text
    src = re.search(r'<script src="(/static/js/bokeh.min.js\?v=[0-9a-f]+)"', page).group(1)  # type: ignore[union-attr]
    r = get(one_app.url(src))
    assert r.status == 200 and int(r.headers["Content-Length"]) > 100_000
    assert "max-age=315360000" in r.headers["Cache-Control"]
    unversioned = get(one_app.url("/static/js/bokeh.min.js"))
    assert "Cache-Control" not in unversioned.headers
    etag = unversioned.headers["Etag"]
    assert get(one_app.url("/static/js/bokeh.min.js"), {"If-None-Match": etag}).status == 304
    assert get(one_app.url("/static/js/nope.js")).status == 404
    assert get(one_app.url("/static/../x")).status in (403, 404)


def test_websocket_path_without_upgrade_is_400(one_app):
    assert get(one_app.url("/demo/ws")).status == 400


def test_unknown_path_is_404(one_app):
    assert get(one_app.url("/nowhere")).status == 404


def test_session_id_in_argument_and_header_conflict(one_app):
    r = get(one_app.url("/demo?bokeh-session-id=a"), {"Bokeh-Session-Id": "b"})
    assert r.status == 403


def test_provided_session_id_is_reused(one_app):
    first = get(one_app.url("/demo?bokeh-session-id=shared-one")).text
    second = get(one_app.url("/demo?bokeh-session-id=shared-one")).text
    ids = [re.search(r'data-root-id="([^"]+)"', t).group(1) for t in (first, second)]  # type: ignore[union-attr]
    assert ids[0] == ids[1]  # same document, so the same root model


def test_index_can_be_disabled_or_forced(server_factory, tmp_path):
    disabled = server_factory([f"{APPS}/demo.py"], ["--disable-index"])
    assert get(disabled.url("/")).status == 404
    forced = server_factory([f"{APPS}/demo.py"], ["--disable-index-redirect"])
    assert get(forced.url("/")).status == 200
    template = tmp_path / "index.html"
    template.write_text("{% for item in items %}<i>{{ prefix }}{{ item }}</i>{% end %}")
    custom = server_factory([f"{APPS}/demo.py", f"{APPS}/ticker.py"], ["--index", str(template)])
    assert get(custom.url("/")).text == "<i>/demo</i><i>/ticker</i>"


def test_ico_path_none_disables_favicon(server_factory):
    server = server_factory([f"{APPS}/demo.py"], ["--ico-path", "none"])
    assert get(server.url("/favicon.ico")).status == 404

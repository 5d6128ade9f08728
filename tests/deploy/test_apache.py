"""The Apache configs of deploy/apache/, run for real in front of Aperture and driven by Chromium.

``apache2 -f <rendered conf> -DFOREGROUND`` runs as a child process with everything it
writes in a temporary ServerRoot; Aperture runs behind it. Each test checks in headless
Chromium that the page renders through Apache and that a button click reaches the app's
Python callback and comes back, and reads Apache's access log (its format names the
handler, ``%R``, and the balancer member, ``BALANCER_WORKER_NAME``) to see which path
every request took.
"""

from __future__ import annotations

import re

import pytest

from tests.deploy.harness import (
    APP_PATH,
    RELAY_KEY,
    RELAY_KEY_ENV,
    Deployment,
    allow_origin,
    close_page,
    free_port,
    http_get,
    record_static,
    round_trip,
    static_dir,
)
from tests.support.browser import BokehPage

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]


def assert_served_by_apache(seen: dict[str, dict[str, str]], prefix: str) -> None:
    scripts = [url for url in seen if re.search(rf"{prefix}/static/js/bokeh(-\w+)?\.min\.js\?v=", url)]
    assert len(scripts) >= 2, seen
    for url in scripts:
        assert seen[url].get("x-static-served-by") == "apache", (url, seen[url])


def test_prefix_myapp_with_static_alias(deployment: Deployment, bokeh_page: BokehPage) -> None:
    port = free_port()
    server = deployment.aperture([allow_origin(port), "--prefix", "/myapp"])
    apache = deployment.apache(
        "apache/myapp-prefix.conf",
        [port],
        listen=f"127.0.0.1:{port}",
        backend=f"127.0.0.1:{server.port}",
        static_dir=static_dir(),
    )
    seen = record_static(bokeh_page)
    round_trip(bokeh_page, f"http://127.0.0.1:{port}/myapp{APP_PATH}")
    assert_served_by_apache(seen, "/myapp")
    close_page(bokeh_page)

    # Page proxied over HTTP, websocket tunnelled (101), assets from disk (no proxy handler).
    apache.wait_for_access(rf'"GET /myapp{APP_PATH} HTTP/1.1" 200 \d+ handler=proxy-server')
    apache.wait_for_access(rf'"GET /myapp{APP_PATH}/ws HTTP/1.1" 101 \S+ handler=proxy-server')
    assets = apache.wait_for_access(r'"GET /myapp/static/', count=2)
    assert not any("proxy-server" in line for line in assets), assets

    # The index redirect keeps the public prefix; the static files match Aperture's own.
    index = http_get(f"http://127.0.0.1:{port}/myapp/")
    assert index.status == 302 and index.headers["Location"] == f"/myapp{APP_PATH}"
    proxied = http_get(f"http://127.0.0.1:{port}/myapp/static/js/bokeh.min.js")
    direct = http_get(server.url("/myapp/static/js/bokeh.min.js"))
    assert proxied.status == 200 and proxied.body == direct.body
    assert proxied.headers["Content-Type"].startswith("text/javascript")
    # Only /myapp is proxied.
    assert http_get(f"http://127.0.0.1:{port}{APP_PATH}").status in (403, 404)


def test_balancer_bybusyness_with_separate_websocket_balancer(
    deployment: Deployment, bokeh_page: BokehPage
) -> None:
    port = free_port()
    servers = [deployment.aperture([allow_origin(port)], env={RELAY_KEY_ENV: RELAY_KEY}) for _ in range(3)]
    apache = deployment.apache(
        "apache/balancer.conf",
        [port],
        listen=f"127.0.0.1:{port}",
        static_dir=static_dir(),
        **{f"backend{i}": f"127.0.0.1:{server.port}" for i, server in enumerate(servers, 1)},
    )
    url = f"http://127.0.0.1:{port}{APP_PATH}"
    seen = record_static(bokeh_page)
    round_trip(bokeh_page, url)
    assert_served_by_apache(seen, "")
    second = BokehPage(bokeh_page.page.context.new_page())
    try:
        round_trip(second, url)
    finally:
        second.page.close()
    close_page(bokeh_page)

    members = "|".join(re.escape(f"127.0.0.1:{server.port}") for server in servers)
    # Pages went to the http balancer, websockets (101) to the ws balancer.
    apache.wait_for_access(rf'"GET {APP_PATH} HTTP/1.1" 200 .*worker=http://({members})$', count=2)
    apache.wait_for_access(rf'"GET {APP_PATH}/ws HTTP/1.1" 101 .*worker=ws://({members})$', count=2)
    assert not [line for line in apache.access_lines() if "/ws " in line and "worker=http" in line]
    assets = apache.wait_for_access(r'"GET /static/', count=2)
    assert all(line.endswith("worker=-") for line in assets), assets

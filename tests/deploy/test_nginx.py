"""The nginx configs of deploy/nginx/, run for real in front of Aperture and driven by Chromium.

Every scenario renders its template into a temporary directory, starts nginx as a child
process on a free loopback port and Aperture behind it, then checks in headless Chromium
that the page renders through the proxy and that a button click reaches the app's Python
callback and comes back (``tests/deploy/apps/button.py``). Aperture is told to accept
websockets from the proxy's origin, since that is where the page comes from.
"""

from __future__ import annotations

import json
import re
import stat

import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from tests.deploy.harness import (
    APP_PATH,
    Deployment,
    allow_origin,
    close_page,
    free_port,
    http_get,
    in_thread,
    record_static,
    round_trip,
    self_signed_certificate,
    static_dir,
)
from tests.support.browser import BokehPage
from tests.support.wsclient import TOKEN_RE, BokehClient, ws_url

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]


# -- basic reverse proxy ---------------------------------------------------------------------------


def test_basic_reverse_proxy_with_websocket_upgrade(deployment: Deployment, bokeh_page: BokehPage) -> None:
    port = free_port()
    server = deployment.aperture([allow_origin(port)])
    nginx = deployment.nginx(
        "nginx/basic.conf", [port], listen=f"127.0.0.1:{port}", backend=f"127.0.0.1:{server.port}"
    )
    url = f"http://127.0.0.1:{port}{APP_PATH}"
    round_trip(bokeh_page, url)
    close_page(bokeh_page)

    # The page, its assets and the websocket upgrade (101) all went through nginx to Aperture.
    upstream = re.escape(f"upstream=127.0.0.1:{server.port}")
    nginx.wait_for_access(rf'"GET {APP_PATH} HTTP/1.1" 200 .*{upstream}')
    nginx.wait_for_access(rf'"GET /static/js/bokeh.min.js\?v=\w+ HTTP/1.1" 200 .*{upstream}')
    nginx.wait_for_access(rf'"GET {APP_PATH}/ws HTTP/1.1" 101 .*{upstream}')


# -- static files served by nginx ------------------------------------------------------------------


def test_static_alias_serves_bokehjs_from_disk(deployment: Deployment, bokeh_page: BokehPage) -> None:
    port = free_port()
    server = deployment.aperture([allow_origin(port)])
    nginx = deployment.nginx(
        "nginx/static-alias.conf",
        [port],
        listen=f"127.0.0.1:{port}",
        backend=f"127.0.0.1:{server.port}",
        static_dir=static_dir(),
    )
    static_headers = record_static(bokeh_page)
    round_trip(bokeh_page, f"http://127.0.0.1:{port}{APP_PATH}")

    # The browser got every BokehJS file from nginx (its header, no Aperture server header) ...
    scripts = [url for url in static_headers if re.search(r"/static/js/bokeh(-\w+)?\.min\.js\?v=", url)]
    assert len(scripts) >= 2, static_headers
    for url in scripts:
        assert static_headers[url].get("x-static-served-by") == "nginx", (url, static_headers[url])
        assert "aperture" not in static_headers[url].get("server", "").lower()
        assert "max-age=315360000" in static_headers[url].get("cache-control", "")  # ?v= -> expires max
    # ... and nginx logged every asset request without an upstream: none reached Aperture,
    # while the page itself did.
    lines = nginx.wait_for_access(r'"GET /static/', count=len(scripts))
    assert all("upstream=-" in line for line in lines), lines
    nginx.wait_for_access(rf'"GET {APP_PATH} HTTP/1.1" 200 .*upstream=127\.0\.0\.1:{server.port}')

    # The same file, byte for byte, as Aperture would serve it.
    direct = http_get(server.url("/static/js/bokeh.min.js"))
    proxied = http_get(f"http://127.0.0.1:{port}/static/js/bokeh.min.js")
    assert proxied.status == 200 and proxied.body == direct.body
    assert proxied.headers["Content-Type"].startswith("text/javascript")
    assert http_get(f"http://127.0.0.1:{port}/static/js/no-such-file.js").status == 404


# -- TLS terminated at nginx -----------------------------------------------------------------------


def test_ssl_termination_with_xheaders(deployment: Deployment, bokeh_page: BokehPage) -> None:
    cert, key = self_signed_certificate(deployment.workdir)
    http_port, https_port = free_port(), free_port()
    server = deployment.aperture([allow_origin(https_port), "--use-xheaders"])
    deployment.nginx(
        "nginx/ssl-termination.conf",
        [http_port, https_port],
        listen=f"127.0.0.1:{http_port}",
        ssl_listen=f"127.0.0.1:{https_port}",
        https_port=https_port,
        ssl_certificate=cert,
        ssl_certificate_key=key,
        backend=f"127.0.0.1:{server.port}",
    )
    url = f"https://127.0.0.1:{https_port}{APP_PATH}"

    # Plain HTTP is redirected to HTTPS.
    redirect = http_get(f"http://127.0.0.1:{http_port}{APP_PATH}?x=1")
    assert redirect.status == 301
    assert redirect.headers["Location"] == f"{url}?x=1"

    # Browser over https/wss: renders, round-trips, and the app saw https and the client's address.
    round_trip(bokeh_page, url)
    info = bokeh_page.model_value("info", "model.text")
    assert info.startswith("protocol=https remote_ip=127.0.0.1 "), info
    assert bokeh_page.page.evaluate("location.protocol") == "https:"

    # The client address the app sees is the one nginx saw (X-Real-IP), not nginx's own: a client
    # connecting from 127.0.0.5 while nginx talks to Aperture from 127.0.0.1.
    page = http_get(url, source_address=("127.0.0.5", 0))
    assert page.status == 200
    assert page.headers["Strict-Transport-Security"] == "max-age=31536000"
    token = TOKEN_RE.search(page.text)
    assert token, page.text
    document = in_thread(pull_document(ws_url(url), token.group(1), source_ip="127.0.0.5"))
    assert "protocol=https remote_ip=127.0.0.5 " in document, document


async def pull_document(url: str, token: str, *, source_ip: str) -> str:
    """PULL-DOC over a websocket opened from ``source_ip`` (certificate not checked); the JSON."""
    request = HTTPRequest(url, network_interface=source_ip, validate_cert=False)
    client = BokehClient(await websocket_connect(request, subprotocols=["bokeh", token]))
    try:
        assert (await client.recv()).msgtype == "ACK"
        return json.dumps((await client.pull()).content)
    finally:
        await client.close()


# -- unix socket upstream --------------------------------------------------------------------------


def test_unix_socket_upstream(deployment: Deployment, bokeh_page: BokehPage) -> None:
    port = free_port()
    socket_path = deployment.path("aperture.sock")
    server = deployment.aperture_on_socket(socket_path)
    nginx = deployment.nginx(
        "nginx/unix-socket.conf", [port], listen=f"127.0.0.1:{port}", socket_path=socket_path
    )
    assert socket_path.is_socket()
    assert stat.S_IMODE(socket_path.stat().st_mode) == 0o600  # only its owner (and root) may connect
    round_trip(bokeh_page, f"http://127.0.0.1:{port}{APP_PATH}")
    close_page(bokeh_page)
    nginx.wait_for_access(rf'"GET {APP_PATH}/ws HTTP/1.1" 101 .*upstream=unix:{re.escape(str(socket_path))}')
    assert server.running


# -- load balancing over three instances -----------------------------------------------------------


def test_load_balancer_least_conn_renders_and_round_trips(
    deployment: Deployment, bokeh_page: BokehPage
) -> None:
    nginx, servers = deployment.nginx_balanced()
    url = f"http://127.0.0.1:{nginx.ports[0]}{APP_PATH}"
    round_trip(bokeh_page, url)
    # A second page in the same browser, likely on another instance, works just as well.
    second = BokehPage(bokeh_page.page.context.new_page())
    try:
        round_trip(second, url)
    finally:
        second.page.close()
    used = nginx.upstreams()
    assert len(used) >= 2, used  # requests were spread (least_conn falls back to round robin)
    assert set(used) <= {f"127.0.0.1:{server.port}" for server in servers} | {"-"}

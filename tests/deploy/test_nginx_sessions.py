"""Sessions behind nginx without a browser: app runs per page view, health, SIGTERM.

These speak the Bokeh protocol directly (``tests/support/wsclient.py``) through the
proxy, as a browser would: GET the page, open its websocket with the page's token, wait
for the ACK, PULL-DOC, close.
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import time

import pytest

from tests.deploy.harness import APP_PATH, Deployment, allow_origin, free_port, http_get
from tests.support.wsclient import BokehClient, fetch_token, ws_url

pytestmark = pytest.mark.timeout(90)


async def page_view(url: str) -> None:
    """What a browser does for one page view: GET the page, open its websocket, pull, close."""
    token = await asyncio.to_thread(fetch_token, url)
    client = await BokehClient.connect(ws_url(url), token)  # waits for the ACK
    try:
        reply = await client.pull()
        assert reply.msgtype == "PULL-DOC-REPLY", reply.header
    finally:
        await client.close()


async def test_load_balancer_runs_the_app_once_per_page_view(deployment: Deployment) -> None:
    runs = deployment.path("runs.txt")
    runs.touch()
    nginx, servers = deployment.nginx_balanced(runs)
    url = f"http://127.0.0.1:{nginx.ports[0]}{APP_PATH}"
    for _ in range(30):
        await page_view(url)
    # Every instance got requests: least_conn falls back to round robin between idle instances,
    # so page GETs and websockets of one view keep landing on different instances.
    used = nginx.upstreams()
    assert set(used) == {f"127.0.0.1:{server.port}" for server in servers}, used
    lines = runs.read_text().splitlines()
    by_session = collections.Counter(line.split()[1] for line in lines)
    repeated = {session: n for session, n in by_session.items() if n > 1}
    assert len(lines) == 30 and not repeated, f"{len(lines)} app runs for 30 page views; repeated: {repeated}"


def test_health_and_readiness_through_nginx(deployment: Deployment) -> None:
    nginx, servers = deployment.nginx_balanced()
    for path in ("/healthz", "/readyz"):
        for _ in range(3):  # one request per instance (round robin)
            response = http_get(f"http://127.0.0.1:{nginx.ports[0]}{path}")
            assert response.status == 200, (path, response.status, response.text)
        for server in servers:
            assert http_get(server.url(path)).status == 200


async def test_sigterm_closes_websockets_going_away_through_nginx(deployment: Deployment) -> None:
    port = free_port()
    server = deployment.aperture([allow_origin(port)])
    deployment.nginx(
        "nginx/basic.conf", [port], listen=f"127.0.0.1:{port}", backend=f"127.0.0.1:{server.port}"
    )
    url = f"http://127.0.0.1:{port}{APP_PATH}"
    token = await asyncio.to_thread(fetch_token, url)
    client = await BokehClient.connect(ws_url(url), token)
    try:
        await client.pull()
        started = time.monotonic()
        os.kill(server.pid, signal.SIGTERM)  # as systemd's KillSignal / Kubernetes would
        closed = await client.closed(timeout=10)
    finally:
        await client.close()
    assert closed.code == 1001, closed  # "going away", passed through by nginx
    while server.running and time.monotonic() - started < 10:
        await asyncio.sleep(0.05)
    assert not server.running, "aperture did not exit within 10 s of SIGTERM"
    assert server.stop() == 0, server.logs()

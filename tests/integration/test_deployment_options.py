"""TLS, Unix sockets, X-headers, worker processes, relays, health checks, graceful shutdown."""

from __future__ import annotations

import asyncio
import collections
import http.client
import os
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from tests.support.servers import free_port
from tests.support.wsclient import BokehClient, fetch_token, ws_url

APPS = "tests/apps"


def http_get(url: str, **kw):
    with urllib.request.urlopen(url, timeout=20, **kw) as response:
        return response.status, response.read().decode()


def runs(path) -> list[str]:
    return (
        [line for line in path.read_text().splitlines() if line.startswith("run ")] if path.exists() else []
    )


async def view_page(page_url: str, ws_base: str | None = None) -> dict:
    token = fetch_token(page_url)
    client = await BokehClient.connect(ws_url(ws_base or page_url), token)
    doc = (await client.pull()).content["doc"]
    await client.close()
    return doc


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_health_and_readiness(server_factory):
    server = server_factory([f"{APPS}/demo.py"], ["--prefix", "/pfx"])
    assert http_get(server.url("/pfx/healthz")) == (200, '{"status": "ok"}')
    assert http_get(server.url("/pfx/readyz")) == (200, '{"status": "ready"}')


def test_tls_served_directly(server_factory, certificate):
    cert, key = certificate
    server = server_factory([f"{APPS}/demo.py"], ["--ssl-certfile", str(cert), "--ssl-keyfile", str(key)])
    assert "https://" in server.logs()
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    status, body = http_get(f"https://127.0.0.1:{server.port}/demo", context=context)
    assert status == 200 and '"token":' in body


def test_encrypted_key_without_password_fails_cleanly(tmp_path, certificate):
    cert, key = certificate
    encrypted = tmp_path / "enc.pem"
    subprocess.run(
        ["openssl", "rsa", "-in", str(key), "-aes256", "-passout", "pass:pw", "-out", str(encrypted)],
        check=True, capture_output=True,
    )  # fmt: skip
    done = subprocess.run(
        [os.sys.executable, "-m", "aperture", "serve", f"{APPS}/demo.py", "--port", str(free_port()),
         "--ssl-certfile", str(cert), "--ssl-keyfile", str(encrypted)],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 1
    assert "BOKEH_SSL_PASSWORD" in done.stderr and "Traceback" not in done.stderr


def test_unix_socket(server_factory, tmp_path):
    path = tmp_path / "aperture.sock"
    server = server_factory([f"{APPS}/demo.py"], ["--unix-socket", str(path)], port=None, address=None)
    assert "http+unix://" in server.logs()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    done = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", str(path), "http://localhost/demo"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.stdout == "200"


def test_unix_socket_refuses_network_options(tmp_path):
    done = subprocess.run(
        [os.sys.executable, "-m", "aperture", "serve", f"{APPS}/demo.py", "--unix-socket", str(tmp_path / "s"),
         "--address", "127.0.0.1", "--allow-websocket-origin", "foo.com"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    # the origin allow-list is accepted with a Unix socket (tests/integration/test_limits.py)
    assert "--unix-socket cannot be combined with --address:" in done.stderr


async def test_xheaders_reach_the_app(server_factory, tmp_path):
    server = server_factory([f"{APPS}/hooks_app.py"], ["--use-xheaders"])
    request = urllib.request.Request(
        server.url("/hooks_app"), headers={"X-Forwarded-Proto": "https", "X-Real-Ip": "203.0.113.9"}
    )
    with urllib.request.urlopen(request, timeout=20) as response:
        token = fetch_token.__globals__["TOKEN_RE"].search(response.read().decode()).group(1)
    client = await BokehClient.connect(ws_url(server.url("/hooks_app")), token)
    doc = (await client.pull()).content["doc"]
    await client.close()
    assert doc["roots"][0]["attributes"]["text"] == "https 203.0.113.9"


SHARED_KEY = "k" * 44  # instances relay to each other only when they share BOKEH_SECRET_KEY


async def test_relay_gives_one_app_run_per_page_view(server_factory, tmp_path):
    events = tmp_path / "events.txt"
    env = {"HOOKS_EVENTS": str(events), "BOKEH_SECRET_KEY": SHARED_KEY}
    first = server_factory([f"{APPS}/hooks_app.py"], env=env)
    second = server_factory([f"{APPS}/hooks_app.py"], env=env)
    for _ in range(6):  # the page from one instance, the websocket on the other
        await view_page(first.url("/hooks_app"), second.url("/hooks_app"))
    assert len(runs(events)) == 6
    second.wait_for_log("relayed to its owner")


async def test_websocket_recovers_when_the_owner_is_gone(server_factory, tmp_path):
    events = tmp_path / "events.txt"
    env = {"HOOKS_EVENTS": str(events), "BOKEH_SECRET_KEY": SHARED_KEY}
    owner = server_factory([f"{APPS}/hooks_app.py"], env=env)
    survivor = server_factory([f"{APPS}/hooks_app.py"], env=env)
    token = fetch_token(owner.url("/hooks_app"))
    owner.stop()
    client = await BokehClient.connect(ws_url(survivor.url("/hooks_app")), token)
    doc = (await client.pull()).content["doc"]
    await client.close()
    assert doc["roots"][0]["attributes"]["name"] == "where"
    assert len(runs(events)) == 2  # the page's run on the owner, the recovery run here


async def test_worker_processes_share_the_port_and_run_each_page_once(server_factory, tmp_path):
    events = tmp_path / "events.txt"
    server = server_factory([f"{APPS}/hooks_app.py"], ["--num-procs", "3"], env={"HOOKS_EVENTS": str(events)})
    for _ in range(3):
        server.wait_for_log(r"Worker \d serving with process id: \d+")
    for _ in range(12):
        await view_page(server.url("/hooks_app"))
    assert len(runs(events)) == 12
    assert len({line.split()[1] for line in runs(events)}) >= 2  # spread over workers


def test_workers_share_a_burst_of_keep_alive_connections(server_factory, tmp_path):
    """Connections that arrive together are spread over the workers, not all taken by the first
    one awake (each client then keeps its connection, as browsers and proxies do)."""
    events = tmp_path / "events.txt"
    server = server_factory([f"{APPS}/hooks_app.py"], ["--num-procs", "2"], env={"HOOKS_EVENTS": str(events)})
    server.wait_for_log(r"(?s)Bokeh app running at.*Bokeh app running at")  # both workers listen
    clients = [http.client.HTTPConnection("127.0.0.1", server.port, timeout=20) for _ in range(24)]
    for client in clients:
        client.connect()  # all in the backlog before any worker accepts
    try:
        for _ in range(2):
            for client in clients:
                client.request("GET", "/hooks_app")
                response = client.getresponse()
                response.read()
                assert response.status == 200
    finally:
        for client in clients:
            client.close()
    per_worker = collections.Counter(line.split()[1] for line in runs(events))
    assert sum(per_worker.values()) == 48
    assert len(per_worker) == 2 and min(per_worker.values()) >= 8, per_worker


def test_sigterm_to_the_supervisor_stops_every_worker(server_factory):
    server = server_factory([f"{APPS}/demo.py"], ["--num-procs", "2"])
    pids = {
        int(m) for m in __import__("re").findall(r"Worker \d serving with process id: (\d+)", server.logs())
    }
    deadline = time.monotonic() + 20
    while len(pids) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
        pids = {
            int(m)
            for m in __import__("re").findall(r"Worker \d serving with process id: (\d+)", server.logs())
        }
    assert len(pids) == 2
    os.kill(server.pid, signal.SIGTERM)
    assert server.stop() == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def test_graceful_shutdown_closes_websockets_and_runs_hooks(server_factory, tmp_path):
    events = tmp_path / "events.txt"
    server = server_factory([f"{APPS}/hooks_app.py"], env={"HOOKS_EVENTS": str(events)})
    page = server.url("/hooks_app")
    client = await BokehClient.connect(ws_url(page), fetch_token(page))
    await client.pull()
    started = time.monotonic()
    os.kill(server.pid, signal.SIGTERM)
    closed = await client.closed(timeout=15)
    assert closed.code == 1001
    assert server.stop() == 0
    assert time.monotonic() - started < 10
    assert any(line.startswith("destroyed") for line in events.read_text().splitlines())
    assert "Stopped in" in server.logs()


async def test_readyz_reports_draining_while_work_finishes(server_factory):
    server = server_factory([f"{APPS}/slow_app.py"])
    page = server.url("/slow_app")
    client = await BokehClient.connect(ws_url(page), fetch_token(page))
    await asyncio.sleep(0.3)  # the session's two-second callback is running now
    os.kill(server.pid, signal.SIGTERM)
    await asyncio.sleep(0.3)
    with pytest.raises(urllib.error.HTTPError) as readyz:
        http_get(server.url("/readyz"))
    readyz.value.close()
    assert readyz.value.code == 503
    with pytest.raises(urllib.error.HTTPError) as page_refused:
        http_get(page)
    page_refused.value.close()
    assert page_refused.value.code == 503
    assert http_get(server.url("/healthz"))[0] == 200
    closed = await client.closed(timeout=15)
    assert closed.code == 1001
    assert server.stop() == 0

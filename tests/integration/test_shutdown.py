"""Shutdown under load, callbacks that never return, the readiness delay, start-up and signals.

Each test signals a real server process and watches what its clients, its `/readyz` and its
app hooks see; the app (tests/apps/lifecycle) records its hooks in a file.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from bokeh.util.token import get_session_id

from tests.support.processes import wait_unreaped
from tests.support.servers import ServerProcess
from tests.support.wsclient import BokehClient, fetch_token, model_changed, model_id, ws_url

APP = "tests/apps/lifecycle"
TICKER = "tests/apps/ticker.py"
EXIT_ABANDONED = 3  # aperture.watchdog.EXIT_ABANDONED: a callback or hook outlived --shutdown-timeout


def events(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def http_status(url: str) -> int | str:
    """The status of a GET, or "refused" when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as error:
        error.read()
        error.close()
        return int(error.code)
    except (urllib.error.URLError, ConnectionError):
        return "refused"


def readyz(server: ServerProcess) -> tuple[int | str, str]:
    """(status, body["status"]) of /readyz, or ("refused", "")."""
    try:
        with urllib.request.urlopen(server.url("/readyz"), timeout=10) as response:
            return int(response.status), json.loads(response.read())["status"]
    except urllib.error.HTTPError as error:
        body = json.loads(error.read())
        error.close()
        return int(error.code), str(body["status"])
    except (urllib.error.URLError, ConnectionError):
        return "refused", ""


async def open_session(server: ServerProcess, route: str = "/lifecycle") -> tuple[BokehClient, str]:
    page = server.url(route)
    token = await asyncio.to_thread(fetch_token, page)
    client = await BokehClient.connect(ws_url(page), token)
    await client.pull()
    return client, get_session_id(token)


def exited(server: ServerProcess, timeout: float) -> bool:
    return wait_unreaped(server.pid, timeout)


async def test_sigterm_under_load_closes_every_websocket_and_runs_every_hook(server_factory, tmp_path):
    log = tmp_path / "events.txt"
    server = server_factory([APP], env={"LIFECYCLE_EVENTS": str(log), "LIFECYCLE_CALLBACK": "busy"})
    opened = [await open_session(server) for _ in range(5)]
    await asyncio.sleep(0.5)  # every session now runs its 100 ms callback back to back
    os.kill(server.pid, signal.SIGTERM)
    closes = await asyncio.gather(*(client.closed(timeout=20) for client, _ in opened))
    assert [closed.code for closed in closes] == [1001] * 5
    assert exited(server, 15), "the server did not exit within --shutdown-timeout"
    assert server.stop() == 0, server.logs()
    lines = events(log)
    assert {line.split()[1] for line in lines if line.startswith("destroyed ")} == {sid for _, sid in opened}
    assert lines[-1] == "server-unloaded"
    assert "took longer" not in server.logs()


@pytest.mark.parametrize("threads", ["8", "0"], ids=["worker-thread", "event-loop"])
async def test_a_callback_that_never_returns_ends_the_process_at_the_deadline(
    server_factory, tmp_path, threads
):
    log = tmp_path / "events.txt"
    server = server_factory(
        [APP],
        ["--shutdown-timeout", "3", "--callback-threads", threads],
        env={"LIFECYCLE_EVENTS": str(log), "LIFECYCLE_CALLBACK": "stuck"},
    )
    client, sid = await open_session(server)
    doc = (await client.pull()).content["doc"]
    await client.send("PATCH-DOC", model_changed(model_id(doc, "trigger"), "text", "go"))
    deadline = time.monotonic() + 10
    while f"stuck {sid}" not in events(log) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert f"stuck {sid}" in events(log)
    signalled = time.monotonic()
    os.kill(server.pid, signal.SIGTERM)
    closing = asyncio.ensure_future(client.closed(timeout=10))
    assert await asyncio.to_thread(exited, server, 3 + 5), "the server outlived --shutdown-timeout 3"
    took = time.monotonic() - signalled
    assert server.stop() == EXIT_ABANDONED, server.logs()
    assert took < 3 + 2, f"exited {took:.1f} s after SIGTERM"
    stuck_lines = [line for line in server.logs().splitlines() if sid[:12] in line and "/lifecycle" in line]
    assert any("still running" in line for line in stuck_lines), server.logs()
    closed = await closing
    if threads != "0":  # the event loop was free: clients were told, hooks ran
        assert closed.code == 1001
        assert f"destroyed {sid}" in events(log)
        assert events(log)[-1] == "server-unloaded"


async def test_readyz_answers_503_during_the_shutdown_delay_while_sessions_still_work(server_factory):
    server = server_factory([TICKER], env={"APERTURE_SHUTDOWN_DELAY": "4"})
    assert readyz(server) == (200, "ready")  # a load balancer polls readiness
    client, _ = await open_session(server, "/ticker")
    os.kill(server.pid, signal.SIGTERM)
    await asyncio.sleep(0.3)
    assert (await client.pull()).msgtype == "PULL-DOC-REPLY"  # the open page keeps working
    assert http_status(server.url("/ticker")) == 503  # a new page goes elsewhere
    polls = []
    for _ in range(5):
        polls.append(readyz(server))
        time.sleep(0.2)
    assert polls == [(503, "draining")] * 5
    closed = await client.closed(timeout=15)
    assert closed.code == 1001
    assert exited(server, 15)
    assert server.stop() == 0, server.logs()


def test_sigint_skips_the_shutdown_delay(server_factory):
    server = server_factory([TICKER], ["--shutdown-timeout", "60", "--shutdown-delay", "30"])
    assert readyz(server) == (200, "ready")
    os.kill(server.pid, signal.SIGINT)
    assert exited(server, 15), "SIGINT waited for the shutdown delay"
    assert server.stop() == 0, server.logs()


async def test_readiness_and_sessions_wait_for_an_async_on_server_loaded(server_factory, tmp_path):
    log = tmp_path / "events.txt"
    server = server_factory(
        [APP],
        env={"LIFECYCLE_EVENTS": str(log), "LIFECYCLE_LOAD_SECONDS": "3"},
        ready_line="Serving with process id",  # logged before the server starts: watch it start
    )
    page: dict[str, str] = {}
    fetcher = threading.Thread(target=lambda: page.update(token=fetch_token(server.url("/lifecycle"))))
    seen: list[tuple[int | str, str, bool, bool]] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, text = readyz(server)
        announced = "Bokeh app running at:" in server.logs()
        loaded = "server-loaded-done" in events(log)  # read last: it can only turn true meanwhile
        seen.append((status, text, announced, loaded))
        if status == 200:
            break
        if status == 503 and fetcher.ident is None:
            fetcher.start()  # a page requested while on_server_loaded still runs
        time.sleep(0.1)
    assert seen[-1][0] == 200
    assert (503, "starting", False, False) in seen
    assert all(loaded for status, _, announced, loaded in seen if status == 200 or announced)
    fetcher.join(20)
    assert "token" in page
    sid = get_session_id(page["token"])
    assert f"session {sid} loaded=True" in events(log)


def test_sigterm_during_on_server_loaded_stops_gracefully(server_factory, tmp_path):
    log = tmp_path / "events.txt"
    server = server_factory(
        [APP],
        env={"LIFECYCLE_EVENTS": str(log), "LIFECYCLE_LOAD_SECONDS": "60"},
        ready_line="Serving with process id",
    )
    deadline = time.monotonic() + 20
    while "server-loaded-start" not in events(log) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "server-loaded-start" in events(log)
    assert readyz(server) == (503, "starting")
    os.kill(server.pid, signal.SIGTERM)
    assert exited(server, 15)
    assert server.stop() == 0, server.logs()
    assert events(log)[-1] == "server-unloaded"
    assert "Bokeh app running at:" not in server.logs()


async def test_sighup_stops_gracefully(server_factory, tmp_path):
    log = tmp_path / "events.txt"
    server = server_factory([APP], env={"LIFECYCLE_EVENTS": str(log)})
    client, sid = await open_session(server)
    os.kill(server.pid, signal.SIGHUP)
    closed = await client.closed(timeout=15)
    assert closed.code == 1001
    assert exited(server, 15)
    assert server.stop() == 0, server.logs()
    assert f"destroyed {sid}" in events(log)
    assert events(log)[-1] == "server-unloaded"
    assert "Received SIGHUP" in server.logs()

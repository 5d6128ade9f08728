"""Panel's own session clean-up runs cleanly when Aperture ends a session (issue 9, item 3).

Panel registers `on_session_destroyed` callbacks on each document that expect Bokeh's teardown
order: by the time they run, the document's models no longer belong to it. When they ran with
the models still attached, Panel's `_server_destroy` raised `KeyError` (twice per session) and
skipped the rest of its clean-up. The app (tests/apps/panel_support/teardown) keeps a session in
Panel's per-session registries and reports, from a fresh session, what the ended ones left
behind; after sessions expire, and after shutdown, nothing may be left and the log stays clean.
The app's own hooks must still read the document and the app's globals.
"""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from tests.support.servers import LogMark, ServerProcess
from tests.support.wsclient import BokehClient, fetch_token, ws_url

APP = "tests/apps/panel_support/teardown"
SESSIONS = 6
REAP_ARGS = ["--unused-session-lifetime", "300", "--check-unused-sessions", "100"]
STATE_RE = re.compile(r"panel-state: (.*)")
NOTHING_LEFT = {
    "locations": 0,
    "views": 0,
    "templates": 0,
    "notifications": 0,
    "periodic": 0,
    "onload": 0,
    "browsers": 0,
    "live": 0,
}
# What must never show in the log: Panel's KeyError, or any failing hook or callback.
TROUBLE = ("Traceback", "KeyError", "Error in ", "failed with following error")


def parse(line: str) -> dict[str, int]:
    return {key: int(value) for key, value in (item.split("=") for item in line.split())}


def panel_state(server: ServerProcess, url: str) -> dict[str, int]:
    """Open one report session (its app code prints the counts) and read its line."""
    mark = LogMark(server)
    fetch_token(url + "?report=1")
    return parse(STATE_RE.search(mark.wait_for(r"panel-state: .*\n", timeout=30)).group(1))  # type: ignore[union-attr]


async def open_sessions(url: str, count: int) -> None:
    """Half of them only load the page; the others also open a websocket, pull, and leave.
    One in three is a plain Column instead of a template."""
    for i in range(count):
        plain = "&plain=1" if i % 3 == 0 else ""
        token = await asyncio.to_thread(fetch_token, f"{url}?n={i % 10}{plain}")
        if i % 2:
            client = await BokehClient.connect(ws_url(url), token)
            try:
                await client.pull()
            finally:
                await client.close()


def wait_for_lines(server: ServerProcess, mark: LogMark, text: str, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while mark.new().count(text) < count:
        assert server.running, f"server died:\n{server.logs()[-4000:]}"
        assert time.monotonic() < deadline, f"{count} x {text!r} not logged:\n{mark.new()[-4000:]}"
        time.sleep(0.05)


def assert_clean(log: str) -> None:
    for word in TROUBLE:
        assert word not in log, f"{word!r} in the server log:\n{log[-6000:]}"


def assert_hooks_saw_the_sessions(log: str, values: list[int]) -> None:
    """app_hooks' `on_session_destroyed` read each document; the app's callback read its globals."""
    hooks = re.findall(r"teardown hook: title='teardown probe' roots=(\d+)", log)
    assert len(hooks) == len(values) and all(int(roots) > 0 for roots in hooks), log[-4000:]
    seen = sorted(int(n) for n in re.findall(r"teardown callback: n=(\d+)", log))
    assert seen == sorted(values), log[-4000:]


@pytest.mark.timeout(120)
async def test_expired_panel_sessions_leave_no_panel_state(server_factory, serving_bokeh):
    server = server_factory([APP], REAP_ARGS)
    url = server.url("/teardown")
    assert panel_state(server, url) == NOTHING_LEFT  # the report itself is sound
    mark = LogMark(server)
    await open_sessions(url, SESSIONS)
    wait_for_lines(server, mark, "teardown callback: n=", SESSIONS)
    left = panel_state(server, url)
    if serving_bokeh:  # there, the plain Column sessions stay in pn.state._views
        left["views"] = 0
    assert left == NOTHING_LEFT
    log = mark.new()
    assert_clean(log)
    if not serving_bokeh:  # bokeh serve has emptied the document before hooks run
        assert_hooks_saw_the_sessions(log, [i % 10 for i in range(SESSIONS)])


@pytest.mark.timeout(120)
async def test_panel_sessions_destroyed_at_shutdown_leave_no_panel_state(server_factory, serving_bokeh):
    if serving_bokeh:
        pytest.skip("bokeh serve does not destroy sessions at shutdown")
    server = server_factory([APP])
    url = server.url("/teardown")
    mark = LogMark(server)
    await open_sessions(url, SESSIONS)
    connected = await BokehClient.connect(ws_url(url), await asyncio.to_thread(fetch_token, url + "?n=9"))
    try:
        await connected.pull()
        # SIGTERM: the sessions are destroyed, then on_server_unloaded reports
        await asyncio.to_thread(server.stop)
    finally:
        await connected.close()
    log = mark.new()
    assert parse(STATE_RE.findall(log)[-1]) == NOTHING_LEFT, log[-6000:]
    assert_clean(log)
    assert_hooks_saw_the_sessions(log, [i % 10 for i in range(SESSIONS)] + [9])

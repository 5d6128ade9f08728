"""Memory over a long run (issue 8, item 9): a reaped session is freed at once.

Under churn, sessions whose document and models hung together in reference cycles waited for
Python's next full collection, hundreds of dead documents at a time, which raised the memory
high-water mark that the allocator keeps afterwards. Here the app (tests/apps/gc_probe) turns the
cyclic collector off in the server process, so anything not freed by reference counting stays;
after sessions are opened, used, closed and reaped, a new session's app code counts the Bokeh
documents and sliders the process holds beyond its live sessions: none may be left.
"""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from tests.support.servers import ServerProcess
from tests.support.wsclient import BokehClient, fetch_token, model_changed, model_id, ws_url

APP = "tests/apps/gc_probe"
SESSIONS = 6
REAP_ARGS = ["--unused-session-lifetime", "300", "--check-unused-sessions", "100"]
LEFT_RE = re.compile(r"gc-probe left behind: documents=(-?\d+) sliders=(-?\d+)")


async def use_session(url: str, value: float) -> None:
    """What a browser tab does: page, websocket, PULL-DOC, move the slider, leave."""
    client = await BokehClient.connect(ws_url(url), await asyncio.to_thread(fetch_token, url))
    try:
        pulled = await client.pull()
        slider = model_id(pulled.content["doc"], "amplitude")
        reply = await client.request("PATCH-DOC", model_changed(slider, "value", value))
        assert reply.msgtype == "OK", reply
    finally:
        await client.close()


def wait_for_reaping(server: ServerProcess, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while server.logs().count("gc-probe destroyed") < count:
        assert time.monotonic() < deadline, f"sessions were not reaped:\n{server.logs()[-3000:]}"
        time.sleep(0.05)


def left_behind(server: ServerProcess, url: str) -> tuple[int, int]:
    """Open one more session (its app code reports) and read its report."""
    before = len(LEFT_RE.findall(server.logs()))
    fetch_token(url)
    deadline = time.monotonic() + 20
    while len(found := LEFT_RE.findall(server.logs())) <= before:
        assert time.monotonic() < deadline, f"no report from the probe:\n{server.logs()[-3000:]}"
        time.sleep(0.05)
    documents, sliders = found[-1]
    return int(documents), int(sliders)


@pytest.mark.timeout(90)
async def test_reaped_sessions_leave_no_document_behind(server_factory, serving_bokeh):
    if serving_bokeh:
        pytest.skip("bokeh serve keeps some destroyed documents alive; the guarantee is Aperture's")
    server = server_factory([APP], REAP_ARGS)
    url = server.url("/gc_probe")
    assert left_behind(server, url) == (0, 0)  # nothing yet: the report itself is sound
    wait_for_reaping(server, 1)
    for i in range(SESSIONS):
        await use_session(url, 0.5 + i / 10)
    wait_for_reaping(server, 1 + SESSIONS)
    time.sleep(0.5)  # the destroyed hook runs just before the document is released
    assert left_behind(server, url) == (0, 0)

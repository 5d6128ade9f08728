"""`--slow-callback-ms`: one WARNING naming app, session and what ran, for callbacks and messages
that take too long; counted in the metrics when they are on. Checked on the event loop
(`--callback-threads 0`, text logs, metrics off) and on callback threads (JSON logs, metrics on,
where log lines made by app code on a thread must carry the app and session too)."""

from __future__ import annotations

import json
import re
import urllib.error

import pytest

from aperture.security.tokens import get_session_id
from tests.operations.scrape import fetch, scrape, value, wait_for
from tests.support.servers import LogMark
from tests.support.wsclient import BokehClient, fetch_token, model_changed, model_id, ws_url

MODES = {
    "loop": ["--slow-callback-ms", "100", "--callback-threads", "0"],
    "threads": ["--slow-callback-ms", "100", "--callback-threads", "2", "--metrics", "--log-format", "json"],
}


def _started(factory, mode):
    server = factory(["tests/operations/apps/timers.py"], MODES[mode])
    server.mode = mode
    return server


@pytest.fixture(scope="module")
def loop_server(module_server_factory):
    return _started(module_server_factory, "loop")


@pytest.fixture(scope="module")
def threads_server(module_server_factory):
    return _started(module_server_factory, "threads")


@pytest.fixture(params=sorted(MODES))
def server(request):
    return request.getfixturevalue(f"{request.param}_server")


def warnings_about(text: str, what: str, session_id: str) -> list[str]:
    pattern = re.compile(
        rf"Slow {re.escape(what)} in app /timers, session '{re.escape(session_id[:12])}': \d+ ms"
    )
    return [line for line in text.splitlines() if pattern.search(line)]


async def test_a_slow_timer_callback_and_a_slow_message_warn_once_each(server):
    mark = LogMark(server)
    page = server.url("/timers")
    token = fetch_token(page)
    session_id = get_session_id(token)
    wait_for(lambda: warnings_about(mark.new(), "next_tick callback sleepy_tick", session_id), timeout=10)
    client = await BokehClient.connect(ws_url(page), token)
    slider = model_id((await client.pull()).content, "slider")
    for new in (2, 9, 3):
        assert (await client.request("PATCH-DOC", model_changed(slider, "value", new))).msgtype == "OK"
    await client.close()
    text = mark.new()
    assert len(warnings_about(text, "PATCH-DOC", session_id)) == 1, text
    assert len(warnings_about(text, "next_tick callback sleepy_tick", session_id)) == 1
    assert not warnings_about(text, "periodic callback quick_periodic", session_id)
    if server.mode == "threads":
        slow = value(scrape(server.url("/metrics")), "aperture_slow_callbacks_total", app="/timers")
        assert slow >= 2


async def test_log_lines_from_app_code_carry_app_and_session(threads_server):
    server = threads_server  # JSON logs: the fields can be checked
    mark = LogMark(server)
    page = server.url("/timers")
    token = fetch_token(page)
    client = await BokehClient.connect(ws_url(page), token)
    slider = model_id((await client.pull()).content, "slider")
    await client.request("PATCH-DOC", model_changed(slider, "value", 7))
    await client.close()
    line = mark.wait_for(r'\{[^\n]*"seven chosen"[^\n]*\}')
    record = json.loads(line)
    assert record["app"] == "/timers"
    assert get_session_id(token).startswith(record["session"])
    errors = [
        json.loads(raw) for raw in re.findall(r'\{[^\n]*"Error in session callback[^\n]*\}', server.logs())
    ]
    assert errors and all(e.get("app") == "/timers" and e.get("session") for e in errors)


def test_without_metrics_the_endpoint_is_not_there(loop_server):
    server = loop_server  # runs without --metrics
    with pytest.raises(urllib.error.HTTPError) as missing:
        fetch(server.url("/metrics"))
    missing.value.close()
    assert missing.value.code == 404

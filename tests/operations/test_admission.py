"""Admission control on real servers: `--max-sessions` and `--max-sessions-per-app`.

Past a limit a new page view (page or autoload.js) gets 503 with Retry-After and a short page
naming the app, a websocket that would create a new session is closed with 1013, `/readyz` says
"full" while the process is; sessions already held keep working, and a reaped session frees its
slot. Client-controlled values (session ids, tokens, the forwarding marker, a flood of views)
cannot get past a limit or hurt the sessions already there.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from bokeh.application import Application
from bokeh.util.token import generate_jwt_token, generate_session_id, get_session_id

from aperture.config import Config
from aperture.core import ServerCore
from aperture.errors import SessionLimitReached
from aperture.operations.admission import RefusalLog
from tests.support.rawhttp import Client
from tests.support.wsclient import BokehClient, slider_round_trip, ws_url

APPS = "tests/apps"
TOKEN_RE = re.compile(r'"token":\s*"([^"]+)"')
REFUSAL_LOG = "Refused a new session"
QUICK_STOP = ("--shutdown-delay", "0")  # these tests ask /readyz, which would delay SIGTERM by 3 s

pytestmark = pytest.mark.timeout(60)


def token_of(reply) -> str:
    match = TOKEN_RE.search(reply.decoded.decode())
    assert match, reply.decoded[:300]
    return match.group(1)


def new_token(session_id: str | None = None) -> str:
    """What any client can make in the default (unsigned) mode: a token for a session of its choice."""
    return generate_jwt_token(session_id or generate_session_id(None, False), secret_key=None, signed=False)


def assert_refused(reply, app: str) -> None:
    assert reply.status == 503, (reply.status, reply.decoded[:300])
    assert int(reply.headers["retry-after"]) >= 1
    page = reply.decoded.decode()
    assert reply.headers["content-type"].startswith("text/html")
    assert f"The app at {app} cannot open a new session" in page and "try again" in page
    assert "Traceback" not in page


def get(server, path: str):
    http = Client(server.port)
    try:
        return http.get(path)
    finally:
        http.close()


def ready(server) -> tuple[int, dict]:
    reply = get(server, "/readyz")
    return reply.status, json.loads(reply.body)


# -- a full process: 2 sessions, 1 per app, held by pages (no websocket needed) ----------------------


@pytest.fixture(scope="module")
def full(module_server_factory):
    """A server with both its sessions taken: one page of /demo and one of /ticker."""
    server = module_server_factory(
        [f"{APPS}/demo.py", f"{APPS}/ticker.py"],
        ["--max-sessions", "2", "--max-sessions-per-app", "1", *QUICK_STOP],
    )
    http = Client(server.port)
    demo, ticker = http.get("/demo"), http.get("/ticker")
    assert demo.status == ticker.status == 200
    http.close()
    return server, token_of(demo), token_of(ticker)


def test_a_new_view_past_the_limit_gets_503_a_page_and_retry_after(full) -> None:
    server, _, _ = full
    http = Client(server.port)
    assert_refused(http.get("/demo"), "/demo")
    assert_refused(http.get("/ticker", headers={"Accept-Encoding": "gzip"}), "/ticker")
    assert_refused(http.get("/demo/autoload.js?bokeh-autoload-element=x"), "/demo")
    assert http.get("/demo/metadata").status == 200  # makes no session: not limited
    assert http.get("/healthz").status == 200
    http.close()
    server.wait_for_log(r"Refused a new session of /(demo|ticker): this process is at --max-sessions 2")


def test_readyz_says_full(full) -> None:
    server, _, _ = full
    assert ready(server) == (503, {"status": "full"})


async def test_existing_sessions_are_served_page_and_websocket(full) -> None:
    server, demo_token, _ = full
    session_id = get_session_id(demo_token)
    http = Client(server.port)
    again = http.get(f"/demo?bokeh-session-id={session_id}")  # the same session's page, reloaded
    assert again.status == 200
    http.close()
    assert get_session_id(token_of(again)) == session_id
    await slider_round_trip(server.url("/demo"), demo_token, 3)
    await slider_round_trip(server.url("/demo"), token_of(again), 4)


async def test_a_websocket_that_would_create_a_session_is_closed_with_1013(full) -> None:
    server, _, _ = full
    client = await BokehClient.connect(ws_url(server.url("/demo")), new_token(), wait_ack=False)
    closed = await client.closed()
    assert closed.code == 1013
    assert "session limit" in (closed.reason or "") and "try again later" in (closed.reason or "")


def test_client_chosen_ids_tokens_and_markers_do_not_pass_the_limit(full) -> None:
    server, _, _ = full
    http = Client(server.port)
    fresh = generate_session_id(None, False)
    assert_refused(http.get(f"/demo?bokeh-session-id={fresh}"), "/demo")
    assert_refused(http.get("/demo", headers={"Bokeh-Session-Id": fresh}), "/demo")
    assert_refused(http.get(f"/demo?bokeh-token={new_token(fresh)}"), "/demo")
    for marker in ("worker", "instance", "", "1", "x" * 300):  # the forwarding marker gains nothing
        assert_refused(http.get("/demo", headers={"X-Aperture-Relay": marker}), "/demo")
    http.close()
    assert server.running


async def test_a_flood_of_views_is_refused_quietly_and_sessions_keep_working(full) -> None:
    server, demo_token, ticker_token = full
    logged_before = server.logs().count(REFUSAL_LOG)

    def views(count: int) -> list[int]:
        http = Client(server.port)
        try:
            return [http.get("/demo" if i % 2 else "/ticker").status for i in range(count)]
        finally:
            http.close()

    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(8) as pool:
        statuses = await asyncio.gather(*(loop.run_in_executor(pool, views, 40) for _ in range(8)))
    assert {status for batch in statuses for status in batch} == {503}
    assert server.logs().count(REFUSAL_LOG) - logged_before <= 1  # rate-limited: not 320 lines
    assert server.running and get(server, "/healthz").status == 200
    await slider_round_trip(server.url("/demo"), demo_token, 5)
    ticker = await BokehClient.connect(ws_url(server.url("/ticker")), ticker_token)
    assert (await ticker.pull()).content["doc"]["roots"]
    await ticker.close()


# -- per-app limits, and slots freed by reaping ------------------------------------------------------


async def test_the_per_app_limit_refuses_only_that_app(server_factory) -> None:
    server = server_factory(
        [f"{APPS}/demo.py", f"{APPS}/ticker.py"], ["--max-sessions-per-app", "1", *QUICK_STOP]
    )
    http = Client(server.port)
    first = http.get("/demo")
    assert first.status == 200
    assert_refused(http.get("/demo"), "/demo")
    assert http.get("/ticker").status == 200
    assert_refused(http.get("/ticker"), "/ticker")
    assert ready(server) == (200, {"status": "ready"})  # a full app alone keeps the process ready
    http.close()
    client = await BokehClient.connect(ws_url(server.url("/demo")), new_token(), wait_ack=False)
    assert (await client.closed()).code == 1013
    await slider_round_trip(server.url("/demo"), token_of(first), 2)
    server.wait_for_log(
        r"Refused a new session of /demo: app /demo in this process is at --max-sessions-per-app 1"
    )


def test_a_reaped_session_frees_its_slot(server_factory) -> None:
    server = server_factory(
        [f"{APPS}/demo.py"],
        [
            "--max-sessions",
            "1",
            "--unused-session-lifetime",
            "300",
            "--check-unused-sessions",
            "100",
            *QUICK_STOP,
        ],
    )
    http = Client(server.port)
    assert http.get("/demo").status == 200  # a page whose websocket never comes: held until reaped
    assert_refused(http.get("/demo"), "/demo")
    deadline = time.monotonic() + 10
    while ready(server)[0] == 503:  # reaped after 0.3 s unused, at the next check (every 0.1 s)
        assert time.monotonic() < deadline, server.logs()
        time.sleep(0.05)
    assert ready(server) == (200, {"status": "ready"})
    assert http.get("/demo").status == 200
    http.close()


# -- the refusal log, without a server -------------------------------------------------------------


def test_refusals_are_logged_at_most_once_per_interval_with_a_count(caplog) -> None:
    now = [100.0]
    refusals = RefusalLog(lambda: now[0], interval=10.0)
    refusal = SessionLimitReached("/demo", "process", 4)
    with caplog.at_level(logging.WARNING, logger="aperture.server"):
        assert refusals.refused(refusal, 4)
        assert not any(refusals.refused(refusal, 4) for _ in range(50))
        now[0] += 10.0
        assert refusals.refused(SessionLimitReached("/demo", "app", 2), 2)
    assert [r.getMessage() for r in caplog.records] == [
        "Refused a new session of /demo: this process is at --max-sessions 4 (4 held)",
        "Refused a new session of /demo: app /demo in this process is at --max-sessions-per-app 2 (2 held)"
        " (50 more refused since the last report)",
    ]
    assert refusal.close_code == 1013 and len(refusal.reason) <= 123  # fits a close frame


def test_sessions_being_built_count_and_may_be_joined() -> None:
    core = ServerCore(
        Config(max_sessions=2, max_sessions_per_app=1), {"/a": Application(), "/b": Application()}
    )
    admission = core.admission
    try:
        with admission.admitting("/a", "one"):
            admission.check("/a", "one")  # a second request for the session being built joins it
            with pytest.raises(SessionLimitReached) as refused:
                admission.check("/a", "two")
            assert refused.value.scope == "app"
            with admission.admitting("/b", "taken-over", check=False):  # from the store: never refused
                assert admission.total() == 2 and admission.full()
                with pytest.raises(SessionLimitReached) as refused:
                    admission.check("/b", "three")
                assert refused.value.scope == "process"
        assert admission.total() == 0 and not admission.full()
        admission.check("/a", "two")
    finally:
        assert core.executor is not None
        core.executor.shutdown()

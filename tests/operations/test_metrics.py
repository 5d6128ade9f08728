"""`--metrics`: `/metrics` follows what happens on a real server, over real sockets.

One server for the module (an auth module configured, so the scrape is seen to need no login);
tests compare figures before and after their own actions, so their order does not matter.
"""

from __future__ import annotations

import asyncio
import http.client
import random
import string
import urllib.error

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.operations.scrape import fetch, parse, scrape, series, value, wait_for
from tests.support.servers import free_port
from tests.support.wsclient import BokehClient, fetch_token, model_changed, model_id, ws_url

USER = {"X-Test-User": "alice"}
APPS = ["tests/apps/demo.py", "tests/apps/broken.py", "tests/operations/apps/timers.py"]


@pytest.fixture(scope="module")
def server(module_server_factory):
    return module_server_factory(APPS, ["--metrics", "--auth-module", "tests/operations/apps/header_auth.py"])


def metrics(server):
    return scrape(server.url("/metrics"))


async def connect(server, app="demo", token=None):
    page = server.url(f"/{app}")
    token = token or fetch_token(page, headers=USER)
    return await BokehClient.connect(ws_url(page), token, headers=USER), token


def test_scrape_needs_no_login_is_not_cached_and_makes_no_session(server):
    before = metrics(server)
    status, headers, body = fetch(server.url("/metrics"))  # no X-Test-User: anonymous
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert headers["Cache-Control"] == "no-store"
    assert "aperture_info{" in body
    after = parse(body)
    assert value(after, "aperture_sessions_created_total") == value(before, "aperture_sessions_created_total")
    with pytest.raises(urllib.error.HTTPError) as refused:
        fetch(server.url("/demo"))  # the apps do need the login
    refused.value.close()
    assert refused.value.code == 302 or refused.value.code >= 400


def test_head_and_other_methods(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("HEAD", "/metrics")
        response = conn.getresponse()
        assert response.status == 200 and response.read() == b""
        assert int(response.getheader("Content-Length")) > 0
        conn.request("POST", "/metrics", body=b"x")
        response = conn.getresponse()
        response.read()
        assert response.status == 405
    finally:
        conn.close()


def test_openmetrics_when_asked(server):
    status, headers, body = fetch(server.url("/metrics"), {"Accept": "application/openmetrics-text"})
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.rstrip().endswith("# EOF")


async def test_pages_websockets_and_closes_move_the_session_gauges(server):
    before = metrics(server)
    tokens = [fetch_token(server.url("/demo"), headers=USER) for _ in range(3)]
    now = metrics(server)
    created = value(now, "aperture_sessions_created_total", app="/demo")
    assert created - value(before, "aperture_sessions_created_total", app="/demo") == 3
    assert value(now, "aperture_session_build_seconds_count", app="/demo") >= 3
    base_connected = value(now, "aperture_sessions", app="/demo", state="connected")
    base_open = value(now, "aperture_websockets_open", app="/demo")
    clients = [(await connect(server, token=t))[0] for t in tokens[:2]]
    now = metrics(server)
    assert value(now, "aperture_sessions", app="/demo", state="connected") == base_connected + 2
    assert value(now, "aperture_websockets_open", app="/demo") == base_open + 2
    live = value(now, "aperture_sessions", app="/demo", state="live")
    assert live == value(now, "aperture_sessions", app="/demo", state="connected") + value(
        now, "aperture_sessions", app="/demo", state="idle"
    )
    for client in clients:
        await client.close()

    def closed():
        m = metrics(server)
        return value(m, "aperture_websockets_open", app="/demo") == base_open and m

    now = wait_for(closed)
    assert value(now, "aperture_sessions", app="/demo", state="connected") == base_connected
    assert value(now, "aperture_sessions", app="/demo", state="live") == live  # idle, not destroyed


async def test_round_trips_fill_the_message_and_pull_histograms(server):
    before = metrics(server)
    client, _ = await connect(server)
    slider = model_id((await client.pull()).content, "slider")
    for i in range(5):
        reply = await client.request("PATCH-DOC", model_changed(slider, "value", i))
        assert reply.msgtype == "OK"
    await client.close()
    now = metrics(server)

    def grew(name, **labels):
        return value(now, name, **labels) - value(before, name, **labels)

    assert grew("aperture_message_seconds_count", app="/demo", msgtype="PATCH-DOC") == 5
    assert grew("aperture_message_seconds_count", app="/demo", msgtype="PULL-DOC-REQ") == 1
    assert grew("aperture_pull_doc_seconds_count", app="/demo") == 1
    assert grew("aperture_pull_doc_bytes_total", app="/demo") > 100
    assert grew("aperture_websocket_sent_bytes_total", app="/demo") > 100
    assert grew("aperture_http_requests_total", endpoint="page", app="/demo", status="200") == 1


def test_callbacks_are_timed_by_kind_and_their_errors_counted(server):
    before = metrics(server)
    fetch_token(server.url("/timers"), headers=USER)

    def ran():
        m = metrics(server)
        grew = value(m, "aperture_callback_seconds_count", app="/timers", kind="periodic") - value(
            before, "aperture_callback_seconds_count", app="/timers", kind="periodic"
        )
        return (
            grew >= 2
            and value(m, "aperture_errors_total", kind="callback")
            > value(before, "aperture_errors_total", kind="callback")
            and m
        )

    now = wait_for(ran)
    assert value(now, "aperture_callback_seconds_count", app="/timers", kind="next_tick") >= 1
    assert value(now, "aperture_callback_seconds_count", app="/timers", kind="timeout") >= 1
    assert value(now, "aperture_slow_callbacks_total") == 0  # no --slow-callback-ms: no warnings


def test_an_app_that_raises_counts_a_build_failure(server):
    before = metrics(server)
    with pytest.raises(urllib.error.HTTPError) as failed:
        fetch(server.url("/broken"), USER)
    failed.value.close()
    assert failed.value.code == 500
    now = metrics(server)
    assert value(now, "aperture_session_build_failures_total", app="/broken") == 1 + value(
        before, "aperture_session_build_failures_total", app="/broken"
    )
    assert value(now, "aperture_http_requests_total", endpoint="page", app="/broken", status="500") >= 1
    assert value(now, "aperture_sessions", app="/broken", state="live") == 0


async def test_bad_tokens_and_bad_messages_count_errors_and_add_no_series(server):
    before = metrics(server)
    page = server.url("/demo")
    for token in ("garbage", "x" * 500, "a.b.c"):
        client = await BokehClient.connect(ws_url(page), token, headers=USER, wait_ack=False)
        closed = await client.closed()
        await client.close()  # release the client's side too (no ResourceWarning at collection)
        assert closed.code == 1008
    client, _ = await connect(server)
    await client.send(f"EVIL-{random.randrange(10**9)}")  # an unknown message type
    assert (await client.closed()).code == 1002
    await client.close()
    now = metrics(server)
    assert (
        value(now, "aperture_errors_total", kind="bad_token")
        - value(before, "aperture_errors_total", kind="bad_token")
        == 3
    )
    assert value(now, "aperture_errors_total", kind="bad_message") == 1 + value(
        before, "aperture_errors_total", kind="bad_message"
    )
    assert {str(s["msgtype"]) for s in series(now, "aperture_message_seconds_count")} == {
        "PULL-DOC-REQ", "PATCH-DOC", "PUSH-DOC", "SERVER-INFO-REQ", "other"
    }  # fmt: skip
    assert value(now, "aperture_websockets_open") == value(before, "aperture_websockets_open")


def _random_path(rng: random.Random) -> str:
    alphabet = string.ascii_letters + string.digits + "-._~%"
    tail = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 40)))
    prefix = rng.choice(["/", "/demo/", "/demo/static/", "/static/", "/x/y/"])
    query = f"?{tail[:5]}={rng.random()}" if rng.random() < 0.3 else ""
    return prefix + tail + query


def _send(conn, rng, count):
    """`count` requests with random paths (and now and then a made-up method); the connection to go on."""
    for i in range(count):
        method = rng.choice(["BREW", "PROPFIND", "X" * 30, "DELETE"]) if i % 20 == 0 else "GET"
        conn.request(method, _random_path(rng), headers={"X-Forwarded-For": str(i)})
        response = conn.getresponse()
        response.read()
        assert response.status in (302, 400, 403, 404, 405), response.status
        if response.will_close:
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", conn.port, timeout=10)
    return conn


def test_ten_thousand_random_paths_add_no_series(server):
    rng = random.Random(12)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn = _send(conn, rng, 1000)  # the series these requests touch exist from now on
        before = metrics(server)
        conn = _send(conn, rng, 10_000)
    finally:
        conn.close()
    after = metrics(server)
    new = set(after) - set(before)
    assert new == set(), sorted(new)[:10]
    assert (
        value(after, "aperture_http_requests_total") - value(before, "aperture_http_requests_total") >= 10_000
    )
    endpoints = {s["endpoint"] for s in series(after, "aperture_http_requests_total")}
    assert endpoints <= {
        "page",
        "autoload",
        "metadata",
        "websocket",
        "static",
        "not_found",
        "metrics",
        "other",
    }


def test_the_exposition_is_valid_and_names_are_prefixed(server):
    _, _, body = fetch(server.url("/metrics"))
    names = {family.name for family in text_string_to_metric_families(body)}
    ours = {n for n in names if not n.startswith(("process_", "python_"))}
    assert all(n.startswith("aperture_") for n in ours), ours
    for expected in (
        "aperture_sessions", "aperture_sessions_created", "aperture_sessions_destroyed",
        "aperture_session_build_seconds", "aperture_pull_doc_seconds", "aperture_message_seconds",
        "aperture_callback_seconds", "aperture_event_loop_lag_seconds", "aperture_websockets_open",
        "aperture_websockets_relayed", "aperture_websocket_sent_bytes", "aperture_http_requests",
        "aperture_errors", "aperture_admission_refused", "aperture_slow_callbacks",
        "aperture_process_cpu_seconds", "aperture_process_resident_memory_bytes", "aperture_info",
        "process_cpu_seconds", "process_resident_memory_bytes",
    ):  # fmt: skip
        assert expected in names, expected


async def test_the_event_loop_lag_probe_runs(server):
    first = value(metrics(server), "aperture_event_loop_lag_seconds_count")
    await asyncio.sleep(0.6)
    assert value(metrics(server), "aperture_event_loop_lag_seconds_count") > first


def test_a_failing_session_store_counts_store_errors(server_factory):
    """A store nobody listens on: each failed call, and each failed probe while it is down (one a
    second), counts as kind "store"; pages still work (without failover)."""
    dead = f"redis://127.0.0.1:{free_port()}/0"
    srv = server_factory(["tests/apps/demo.py"], ["--metrics", "--session-store", dead])
    fetch_token(srv.url("/demo"))
    counted = wait_for(lambda: value(metrics(srv), "aperture_errors_total", kind="store"))
    assert counted >= 1
    wait_for(lambda: value(metrics(srv), "aperture_errors_total", kind="store") > counted, timeout=5)
    fetch_token(srv.url("/demo"))
    assert value(metrics(srv), "aperture_sessions", app="/demo", state="live") == 2

"""Redis trouble (issue 10, item 6): down at start-up, killed mid-run, hung (SIGSTOP).

Two real `aperture serve` instances (A and B) share a real redis-server. While Redis is in
trouble, pages on A keep working: HTTP page views answer 200, websockets open, PULL-DOC and
PATCH-DOC (with the app's Python callback) round-trip, on new sessions and on a websocket opened
before the trouble, and every operation finishes within `BOUND` seconds (a hang detector, not a
speed assertion). The log says so once, not once per request. When Redis returns, the log says
so, the sessions made meanwhile are registered with their state, and failover works again: after
a SIGKILL of A, B restores what was made during and after the outage. A long outage is logged once
per 10 s interval. When only A loses Redis (a partition, through a forwarder the test cuts) and B
takes a session over meanwhile, A must drop its copy once Redis is back.

The helpers below (fixtures `redis` and `store`, `page`, `round_trip`, `set_value`, ...) are also
used by test_store_relay.py and test_store_config.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from bokeh.util.token import get_session_id

from aperture.store.redis_store import peer_key, session_key
from tests.support.redis import RedisServer
from tests.support.servers import LogMark
from tests.support.wsclient import TOKEN_RE, BokehClient, model_changed, model_id, ws_url

APP = "tests/apps/store_h2/counter.py"
ROUTE = "/counter"
BOUND = 5.0  # seconds: an operation taking longer than this is a hang, not slowness
OUTAGE = 3.5  # seconds of requests while Redis is in trouble (well inside the 10 s log interval)
UNREACHABLE = re.compile(r"Session store .* unreachable")

pytestmark = pytest.mark.timeout(60)


def release(redis: RedisServer, *, kill: bool = False) -> None:
    """Stop (or SIGKILL) redis-server and close its stderr pipe, which `RedisServer` leaves open."""
    proc = redis.proc
    if kill:
        redis.kill()
    else:
        redis.stop()
    if proc is not None and proc.stderr is not None:
        proc.stderr.close()


def store_args(url: str) -> list[str]:
    # Sessions must not be discarded as unused while a test runs, whatever the machine's speed.
    return [
        "--session-store", url,
        "--session-store-flush", "100",
        "--unused-session-lifetime", "120000",
        "--check-unused-sessions", "120000",
    ]  # fmt: skip


async def bounded(awaitable: Any, what: str) -> Any:
    try:
        return await asyncio.wait_for(awaitable, BOUND)
    except TimeoutError:
        raise AssertionError(f"{what} hung for more than {BOUND} s") from None


def _get_page(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=BOUND) as response:
        return response.status, response.read().decode("utf-8")


async def page(url: str) -> str:
    """GET the app page (it must answer 200 in time); the session token in it."""
    status, body = await bounded(asyncio.to_thread(_get_page, url), f"GET {url}")
    assert status == 200
    match = TOKEN_RE.search(body)
    assert match, "no session token in the page"
    return match.group(1)


def attributes(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {root["attributes"]["name"]: root["attributes"] for root in doc["roots"]}


async def pull(client: BokehClient) -> dict[str, Any]:
    reply = await bounded(client.pull(), "PULL-DOC")
    assert reply.msgtype == "PULL-DOC-REPLY", reply
    return dict(reply.content["doc"])


async def set_value(client: BokehClient, value: int) -> None:
    """PATCH-DOC the slider; the app's callback echoes it; a PULL-DOC shows both."""
    slider = model_id(await pull(client), "value")
    reply = await bounded(client.request("PATCH-DOC", model_changed(slider, "value", value)), "PATCH-DOC")
    assert reply.msgtype == "OK", reply
    state = attributes(await pull(client))
    assert (state["value"]["value"], state["echo"]["text"]) == (value, f"echo {value}")


async def connect(url: str, token: str) -> BokehClient:
    return await bounded(BokehClient.connect(ws_url(url), token), "websocket open")


async def round_trip(url: str, value: int) -> str:
    """A page view, its websocket, PULL-DOC and PATCH-DOC; returns the token."""
    token = await page(url)
    client = await connect(url, token)
    try:
        await set_value(client, value)
    finally:
        await client.close()
    return token


def stored_value(store: Any, session_id: str) -> Any:
    """The slider value the store holds for a session (None if it has no such field)."""
    fields = store.hgetall(session_key(ROUTE, session_id))
    for name, raw in fields.items():
        if name.startswith(b"m:"):
            entry = json.loads(raw)
            if entry.get("t") == "Slider":
                return entry["a"].get("value")
    return None


async def until(predicate: Any, what: str, timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.1)


def runs_of(runs: Path, session_id: str) -> list[int]:
    """PIDs of the processes that ran the app for this session, in order."""
    lines = runs.read_text().splitlines() if runs.exists() else []
    return [int(pid) for _, pid, sid in (line.split() for line in lines) if sid == session_id]


@pytest.mark.parametrize("trouble", ["down-at-start", "killed", "paused"])
async def test_pages_work_through_redis_trouble_and_failover_resumes(
    redis: RedisServer, store: Any, server_factory, tmp_path: Path, trouble: str
) -> None:
    runs = tmp_path / "runs.txt"
    env = {"STORE_H2_RUNS": str(runs)}
    if trouble == "down-at-start":
        release(redis)  # the same port comes back later
    a = server_factory([APP], store_args(redis.url), env=env)
    b = server_factory([APP], store_args(redis.url), env=env)
    url_a, url_b = a.url(ROUTE), b.url(ROUTE)
    before: list[str] = []
    if trouble != "down-at-start":
        before.append(await round_trip(url_a, 1))
        assert store.exists(session_key(ROUTE, get_session_id(before[0])))
    long_token = await page(url_a)
    long_lived = await connect(url_a, long_token)  # a websocket that lives through the whole outage
    try:
        mark_a, mark_b = LogMark(a), LogMark(b)
        if trouble == "killed":
            release(redis, kill=True)
        elif trouble == "paused":
            redis.pause()

        during: list[str] = []
        began = time.monotonic()
        for n in range(200):
            if time.monotonic() - began > OUTAGE:
                break
            during.append(await round_trip(url_a, 10 + n % 50))
            await set_value(long_lived, 60 + n % 30)
        assert len(during) >= 5, f"only {len(during)} page round trips in {OUTAGE} s"
        outage_token = during[-1]
        await set_value(long_lived, 33)

        # Once per interval: one line for dozens of requests (and one for B's heartbeat), no more.
        # (Down at start-up: counted from the start, where the first line is.)
        log_a, log_b = (a.logs(), b.logs()) if trouble == "down-at-start" else (mark_a.new(), mark_b.new())
        assert len(UNREACHABLE.findall(log_a)) == 1, log_a
        assert len(UNREACHABLE.findall(log_b)) == 1, log_b
        line = next(line for line in log_a.splitlines() if UNREACHABLE.search(line))
        # A hung Redis is noticed by the deadline; a dead one fails at once (refused, or reset).
        assert ("TimeoutError" in line) == (trouble == "paused"), line

        if trouble == "paused":
            redis.resume()
        else:
            redis.start()
        mark_a.wait_for(r"Session store redis://127\.0\.0\.1:\d+/0 is reachable again after", 8)
        mark_b.wait_for(r"is reachable again after", 8)

        # Every session made during the outage is registered now, the last state written.
        made_here = [get_session_id(t) for t in [*before, *during, long_token]]
        await until(
            lambda: all(store.exists(session_key(ROUTE, sid)) for sid in made_here),
            "sessions made during the outage registered",
        )
        long_id = get_session_id(long_token)
        await until(lambda: stored_value(store, long_id) == 33, "the outage's last change stored")
        owner = store.hget(session_key(ROUTE, long_id), "owner").decode()
        assert owner == f"127.0.0.1:{a.port}|"

        after_token = await round_trip(url_a, 44)  # a session made after the return
        after_id = get_session_id(after_token)
        await until(lambda: stored_value(store, after_id) == 44, "a change after the return stored")
    finally:
        await long_lived.close()

    # Failover works again: A dies; B rebuilds the sessions with their state.
    mark_b = LogMark(b)
    os.kill(a.pid, signal.SIGKILL)
    outage_value = 10 + (len(during) - 1) % 50
    for token, value in ((long_token, 33), (outage_token, outage_value), (after_token, 44)):
        client = await connect(url_b, token)
        try:
            state = attributes(await pull(client))
            assert (state["value"]["value"], state["echo"]["text"]) == (value, f"echo {value}")
            await set_value(client, value + 1)  # the callback runs on B now
        finally:
            await client.close()
        session_id = get_session_id(token)
        mark_b.wait_for(rf"Taking over session '{re.escape(session_id[:12])}'", 5)
        assert runs_of(runs, session_id) == [a.pid, b.pid]


@pytest.mark.timeout(45)
async def test_a_long_outage_is_logged_once_per_interval(redis: RedisServer, server_factory) -> None:
    """The 10 s log interval: a line when the outage begins, one more 10 s later, none in between."""
    a = server_factory([APP], store_args(redis.url))
    url = a.url(ROUTE)
    await round_trip(url, 1)
    mark = LogMark(a)
    release(redis, kill=True)
    began = time.monotonic()
    count = 0
    while time.monotonic() - began < 11.5 and count < 500:
        await round_trip(url, count % 100)
        count += 1
        await asyncio.sleep(0.2)
    redis.start()
    back = mark.wait_for(r"is reachable again after \d+\.\d s", 8)
    assert float(back.split()[-2]) >= 11.0, back
    lines = [line for line in mark.new().splitlines() if UNREACHABLE.search(line)]
    assert count >= 10, count
    assert len(lines) == 2, lines
    assert re.search(r"still unreachable after 1[01] s", lines[1]), lines


class CuttableLink:
    """A loopback TCP forwarder to Redis that the test can cut: one instance loses Redis, not all."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.cut = False
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                continue
            if self.cut:
                client.close()  # like a network that drops the connection at once
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            upstream.settimeout(None)  # an idle connection to Redis stays open, as it would directly
            with self._lock:
                self._open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)  # pass the end of the stream on
        except OSError:
            pass

    def sever(self) -> None:
        """Cut every connection now, and every new one until `mend`."""
        self.cut = True
        with self._lock:
            sockets, self._open = self._open, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def mend(self) -> None:
        self.cut = False

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sever()
        self.listener.close()


async def test_a_session_taken_over_while_its_instance_was_cut_off_is_dropped_there(
    redis: RedisServer, store: Any, server_factory, tmp_path: Path
) -> None:
    """A loses Redis (only A: a partition); its heartbeat expires and B takes a session over. When
    A reaches Redis again, it must not keep serving its own copy beside B's: like a write that finds
    another owner, it drops the copy and closes the websocket (1001), which then reconnects to B."""
    runs = tmp_path / "runs.txt"
    env = {"STORE_H2_RUNS": str(runs)}
    link = CuttableLink(redis.port)
    try:
        a = server_factory([APP], store_args(f"redis://127.0.0.1:{link.port}/0"), env=env)
        b = server_factory([APP], store_args(redis.url), env=env)
        token = await page(a.url(ROUTE))
        session_id = get_session_id(token)
        on_a: BokehClient | None = await connect(a.url(ROUTE), token)
        assert on_a is not None
        try:
            await set_value(on_a, 5)
            await until(lambda: stored_value(store, session_id) == 5, "A stored its change")
            link.sever()
            await set_value(on_a, 9)  # A carries on alone, unstored
            a_identity = f"127.0.0.1:{a.port}|"
            await until(lambda: not store.exists(peer_key(a_identity)), "A's heartbeat expired", 8)
            mark_a = LogMark(a)
            on_b = await connect(b.url(ROUTE), token)  # B takes the session over from the store
            try:
                assert attributes(await pull(on_b))["value"]["value"] == 5
                link.mend()
                mark_a.wait_for("is reachable again after", 8)
                closed = await bounded(on_a.closed(), "A closing the websocket of a session B owns")
                on_a = None
                assert (closed.code, closed.reason) == (1001, "session moved to another process")
                assert stored_value(store, session_id) == 5
                assert store.hget(session_key(ROUTE, session_id), "owner") == f"127.0.0.1:{b.port}|".encode()
            finally:
                await on_b.close()
        finally:
            if on_a is not None:
                await on_a.close()
        client = await connect(a.url(ROUTE), token)  # the page's reconnection reaches B's copy
        try:
            assert attributes(await pull(client))["value"]["value"] == 5
        finally:
            await client.close()
        mark_a.wait_for(rf"relayed to its owner \(instance 127\.0\.0\.1:{b.port}\)")
        assert runs_of(runs, session_id) == [a.pid, b.pid]
    finally:
        link.close()

"""With a session store, the store says where a session lives (issue 10, items 3 and 8.3).

Real `aperture serve` instances share a real redis-server:

* a websocket landing on an instance that does not own its session is relayed to the owner the
  store names (the app runs once); when the owner is dead, the instance takes the session over;
* a token's owner hint is never consulted with a store, even one validly signed with the
  deployment's key (a control instance without a store shows that the same token is followed);
* `--num-procs` workers relay to each other through their private sockets, and a killed worker's
  sessions are restored by its sibling or its restarted self;
* an expired token resumes, on any instance and within `--session-reconnect-window`, only a session
  the store knows that was first opened with a valid token; anything else closes 1008;
* a process that lost a session to another (SIGSTOPped past its heartbeat, or its ownership moved
  in Redis) says so, closes its websocket with 1001 and never overwrites the new owner's state.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bokeh.util.token import generate_jwt_token, generate_session_id, get_session_id, get_token_payload

from aperture.security.owner_hints import sign_hint
from aperture.store.redis_store import peer_key, session_key
from tests.store.test_store_trouble import (
    ROUTE,
    attributes,
    bounded,
    connect,
    page,
    pull,
    round_trip,
    runs_of,
    set_value,
    store_args,
    stored_value,
    until,
)
from tests.support.listener import Listener
from tests.support.redis import RedisServer
from tests.support.servers import LogMark, ServerProcess
from tests.support.wsclient import BokehClient, Closed, model_changed, model_id, ws_url

APP = "tests/apps/store_h2/counter.py"
KEY = "store-relay-test-key-" + "k" * 24

pytestmark = pytest.mark.timeout(60)


def instance(server_factory: Any, redis: RedisServer, runs: Path, *extra: str, **env: str) -> ServerProcess:
    """An instance of the test app naming itself by its own loopback address."""
    args = [*store_args(redis.url), "--advertise-address", "127.0.0.1:{port}", *extra]
    server: ServerProcess = server_factory([APP], args, env={"STORE_H2_RUNS": str(runs), **env})
    return server


def identity(server: ServerProcess, worker: str = "") -> str:
    return f"127.0.0.1:{server.port}|{worker}"


def owner_of(store: Any, session_id: str) -> str:
    value = store.hget(session_key(ROUTE, session_id), "owner")
    return "<none>" if value is None else str(value.decode())


@pytest.fixture
def listener() -> Iterator[Listener]:
    spy = Listener()
    yield spy
    spy.close()


async def refused(url: str, token: str) -> Closed:
    """Open a websocket that the server must close before its ACK; the close code and reason."""
    client = await bounded(BokehClient.connect(ws_url(url), token, wait_ack=False), "websocket open")
    closed: Closed = await bounded(client.closed(), "websocket close")
    return closed


# -- relays decided by the store -----------------------------------------------------------------


async def test_store_names_the_owner_then_a_survivor_takes_over(
    redis: RedisServer, store: Any, server_factory: Any, tmp_path: Path
) -> None:
    runs = tmp_path / "runs.txt"
    a = instance(server_factory, redis, runs)
    b = instance(server_factory, redis, runs)
    token = await page(a.url(ROUTE))
    session_id = get_session_id(token)
    assert owner_of(store, session_id) == identity(a)
    mark_a, mark_b = LogMark(a), LogMark(b)
    client = await connect(b.url(ROUTE), token)
    try:
        await set_value(client, 12)  # relayed: the callback runs on A
    finally:
        await client.close()
    short = re.escape(session_id[:12])
    mark_a.wait_for(rf"Websocket opened for session '{short}'")
    mark_b.wait_for(
        rf"Websocket for session '{short}' relayed to its owner \(instance 127\.0\.0\.1:{a.port}\)"
    )
    assert "Websocket opened" not in mark_b.new()
    assert runs_of(runs, session_id) == [a.pid], "the app ran once, on the owner"
    await until(lambda: stored_value(store, session_id) == 12, "A stored the change made through B")

    os.kill(a.pid, signal.SIGKILL)  # the owner dies; its heartbeat has not expired yet
    client = await connect(b.url(ROUTE), token)
    try:
        state = attributes(await pull(client))
        assert (state["value"]["value"], state["echo"]["text"]) == (12, "echo 12")
        await set_value(client, 13)
    finally:
        await client.close()
    mark_b.wait_for(rf"Taking over session '{short}' of /counter from {re.escape(identity(a))}")
    mark_b.wait_for(rf"Restored app /counter, session '{short}' from the session store")
    assert runs_of(runs, session_id) == [a.pid, b.pid]
    assert owner_of(store, session_id) == identity(b)


@pytest.mark.parametrize("keyed", [False, True], ids=["no-key", "BOKEH_SECRET_KEY"])
async def test_token_owner_hint_is_not_consulted_with_a_store(
    redis: RedisServer, store: Any, server_factory: Any, tmp_path: Path, listener: Listener, keyed: bool
) -> None:
    runs = tmp_path / "runs.txt"
    env = {"BOKEH_SECRET_KEY": KEY, "BOKEH_SIGN_SESSIONS": "yes"} if keyed else {}
    a = instance(server_factory, redis, runs, **env)
    b = instance(server_factory, redis, runs, **env)
    secret = KEY if keyed else None
    hint = f"127.0.0.1:{listener.port}|"

    def forged(session_id: str) -> str:
        # With the key, the hint is signed exactly as the deployment signs its own: still ignored.
        signature = sign_hint(KEY.encode(), ROUTE, session_id, hint) if keyed else "forged"
        extra = {"__ap_owner": hint, "__ap_owner_sig": signature}
        return generate_jwt_token(session_id, secret_key=secret, signed=keyed, extra_payload=extra)

    # A session the store knows (owned by A), reached on B with a hint naming the listener.
    known = get_session_id(await page(a.url(ROUTE)))
    mark_b = LogMark(b)
    client = await connect(b.url(ROUTE), forged(known))
    try:
        await set_value(client, 7)
    finally:
        await client.close()
    mark_b.wait_for(rf"relayed to its owner \(instance 127\.0\.0\.1:{a.port}\)")
    # A session nobody knows, with the same kind of hint: built where the websocket landed.
    unknown = generate_session_id(secret_key=secret, signed=keyed)
    client = await connect(b.url(ROUTE), forged(unknown))
    try:
        await set_value(client, 8)
    finally:
        await client.close()
    assert runs_of(runs, known) == [a.pid]
    assert runs_of(runs, unknown) == [b.pid]
    assert owner_of(store, unknown) == identity(b)
    await asyncio.sleep(0.3)
    assert listener.received == [], "a server connected where the token's hint pointed"
    assert f"127.0.0.1:{listener.port}" not in a.logs() + b.logs()

    if keyed:  # control: without a store, the same kind of token would be followed
        c = server_factory([APP], ["--advertise-address", "127.0.0.1:{port}"], env=env)
        token = forged(generate_session_id(secret_key=secret, signed=True))
        client = await connect(c.url(ROUTE), token)
        await client.close()
        await until(lambda: listener.received != [], "the control instance tried the hinted owner", 5)


async def test_num_procs_workers_relay_through_private_sockets_and_restore(
    redis: RedisServer, store: Any, server_factory: Any, tmp_path: Path
) -> None:
    runs = tmp_path / "runs.txt"
    server = server_factory(
        [APP], [*store_args(redis.url), "--num-procs", "2"], env={"STORE_H2_RUNS": str(runs)}
    )
    for _ in range(2):
        server.wait_for_log(r"Worker \d serving with process id")
    workers = {
        int(pid): number
        for number, pid in re.findall(r"Worker (\d) serving with process id: (\d+)", server.logs())
    }
    url = server.url(ROUTE)
    tokens: list[str] = []
    for n in range(24):  # until a websocket lands on the worker that did not build its session
        tokens.append(await round_trip(url, 20 + n))
        if len(tokens) >= 4 and "relayed to its owner (worker socket" in server.logs():
            break
    assert re.search(r"relayed to its owner \(worker socket .*/worker-\d\.sock\)", server.logs())
    for token in tokens:  # each session was built once, and the store names its builder
        session_id = get_session_id(token)
        (pid,) = runs_of(runs, session_id)
        assert owner_of(store, session_id) == identity(server, workers[pid])

    token, value = tokens[-1], 20 + len(tokens) - 1
    session_id = get_session_id(token)
    await until(lambda: stored_value(store, session_id) == value, "the last change stored")
    (owner_pid,) = runs_of(runs, session_id)
    mark = LogMark(server)
    os.kill(owner_pid, signal.SIGKILL)
    for _ in range(4):  # on whichever worker each lands: the state is there, restored only once
        client = await connect(url, token)
        try:
            state = attributes(await pull(client))
            assert (state["value"]["value"], state["echo"]["text"]) == (value, f"echo {value}")
        finally:
            await client.close()
    mark.wait_for(rf"Restored app /counter, session '{re.escape(session_id[:12])}' from the session store")
    mark.wait_for(rf"Worker {workers[owner_pid]} \(pid {owner_pid}\) exited with signal 9; restarting it")
    assert len(runs_of(runs, session_id)) == 2, runs.read_text()
    assert runs_of(runs, session_id)[1] != owner_pid


# -- expired tokens --------------------------------------------------------------------------------


async def until_expired(token: str) -> None:
    expiry = get_token_payload(token)["session_expiry"]
    deadline = time.monotonic() + 10
    while time.time() < expiry + 1:
        assert time.monotonic() < deadline, "the token did not expire"
        await asyncio.sleep(0.1)


async def test_expired_token_resumes_only_a_stored_session_opened_with_a_valid_one(
    redis: RedisServer, store: Any, server_factory: Any, tmp_path: Path
) -> None:
    runs = tmp_path / "runs.txt"
    window = 60
    lifetimes = ("--session-token-expiration", "3", "--session-reconnect-window", str(window))
    a = instance(server_factory, redis, runs, *lifetimes)
    b = instance(server_factory, redis, runs, *lifetimes)
    opened = await page(a.url(ROUTE))  # its websocket opens while the token is valid
    client = await connect(a.url(ROUTE), opened)
    try:
        await set_value(client, 21)
    finally:
        await client.close()
    never = await page(a.url(ROUTE))  # a stored session whose token is never used while valid
    opened_id, never_id = get_session_id(opened), get_session_id(never)
    await until(lambda: stored_value(store, opened_id) == 21, "the change stored")
    assert store.hget(session_key(ROUTE, opened_id), "resumable") == b"1"
    assert store.hget(session_key(ROUTE, never_id), "resumable") == b"0"
    await until_expired(never)
    await until_expired(opened)

    # The owner lives: on B (relayed to A) and on A, the never-opened session is refused.
    for url in (b.url(ROUTE), a.url(ROUTE)):
        closed = await refused(url, never)
        assert closed.code == 1008, closed

    mark_b = LogMark(b)
    os.kill(a.pid, signal.SIGKILL)
    client = await connect(b.url(ROUTE), opened)  # expired, within the window: resumes on B
    try:
        state = attributes(await pull(client))
        assert (state["value"]["value"], state["echo"]["text"]) == (21, "echo 21")
        await set_value(client, 22)
    finally:
        await client.close()
    mark_b.wait_for(rf"Taking over session '{re.escape(opened_id[:12])}'")
    assert runs_of(runs, opened_id) == [a.pid, b.pid]

    closed = await refused(b.url(ROUTE), never)  # the store knows it, but it was never opened
    assert closed.code == 1008, closed
    mark_b.wait_for("Refused an expired token for session .* never opened with a valid one")
    stranger = generate_session_id(secret_key=None, signed=False)  # nobody knows this session
    closed = await refused(b.url(ROUTE), generate_jwt_token(stranger, expiration=-5))
    assert closed.code == 1008, closed
    assert not store.exists(session_key(ROUTE, stranger))
    late = generate_jwt_token(opened_id, expiration=-(window + 30))  # expired beyond the window
    closed = await refused(b.url(ROUTE), late)
    assert closed.code == 1008, closed
    assert runs_of(runs, never_id) == [a.pid] and runs_of(runs, stranger) == []
    assert owner_of(store, never_id) == identity(a), "a refused token did not take the session over"


# -- ownership lost --------------------------------------------------------------------------------


async def test_a_process_that_lost_a_session_closes_it_and_never_overwrites_the_new_owner(
    redis: RedisServer, store: Any, server_factory: Any, tmp_path: Path
) -> None:
    runs = tmp_path / "runs.txt"
    a = instance(server_factory, redis, runs)
    b = instance(server_factory, redis, runs)
    token = await page(a.url(ROUTE))
    session_id = get_session_id(token)
    on_a: BokehClient | None = await connect(a.url(ROUTE), token)
    assert on_a is not None
    on_b: BokehClient | None = None
    try:
        await set_value(on_a, 5)
        slider = model_id(await pull(on_a), "value")
        await until(lambda: stored_value(store, session_id) == 5, "A stored its change")
        os.kill(a.pid, signal.SIGSTOP)  # A hangs: its heartbeat expires, B may take the session
        try:
            await until(lambda: not store.exists(peer_key(identity(a))), "A's heartbeat expired", 8)
            mark_a, mark_b = LogMark(a), LogMark(b)
            on_b = await connect(b.url(ROUTE), token)
            assert attributes(await pull(on_b))["value"]["value"] == 5
            await set_value(on_b, 77)
            await until(lambda: stored_value(store, session_id) == 77, "B stored its change")
            assert owner_of(store, session_id) == identity(b)
            # A change reaches A while it is stopped; it handles it when it wakes up.
            await on_a.send("PATCH-DOC", model_changed(slider, "value", 55))
        finally:
            os.kill(a.pid, signal.SIGCONT)
        closed = await bounded(on_a.closed(), "A closing the websocket of the lost session")
        on_a = None
        assert (closed.code, closed.reason) == (1001, "session moved to another process")
        mark_a.wait_for(
            rf"Session '{re.escape(session_id[:12])}' of /counter was taken over by another process"
        )
        mark_b.wait_for(rf"Taking over session '{re.escape(session_id[:12])}'")
        for _ in range(5):  # several of A's flush intervals: B's state stays
            await asyncio.sleep(0.1)
            assert stored_value(store, session_id) == 77
            assert owner_of(store, session_id) == identity(b)
        state = attributes(await pull(on_b))
        assert (state["value"]["value"], state["echo"]["text"]) == (77, "echo 77")
    finally:
        for client in (on_a, on_b):
            if client is not None:
                await client.close()
    # A page reconnecting to A now reaches B's copy (the store names B), and the app ran twice only.
    client = await connect(a.url(ROUTE), token)
    try:
        assert attributes(await pull(client))["value"]["value"] == 77
    finally:
        await client.close()
    assert runs_of(runs, session_id) == [a.pid, b.pid]


async def test_ownership_moved_in_the_store_is_noticed_at_the_next_write(
    redis: RedisServer, store: Any, server_factory: Any, tmp_path: Path
) -> None:
    runs = tmp_path / "runs.txt"
    a = instance(server_factory, redis, runs)
    b = instance(server_factory, redis, runs)
    token = await page(a.url(ROUTE))
    session_id = get_session_id(token)
    on_a: BokehClient | None = await connect(a.url(ROUTE), token)
    assert on_a is not None
    try:
        await set_value(on_a, 3)
        await until(lambda: stored_value(store, session_id) == 3, "A stored its change")
        mark_a = LogMark(a)
        store.hset(session_key(ROUTE, session_id), "owner", identity(b))  # B's now (as by a takeover)
        slider = model_id(await pull(on_a), "value")
        await on_a.send("PATCH-DOC", model_changed(slider, "value", 4))
        closed = await bounded(on_a.closed(), "A closing the websocket of the lost session")
        on_a = None
        assert (closed.code, closed.reason) == (1001, "session moved to another process")
        mark_a.wait_for("was taken over by another process; dropping this copy")
        assert stored_value(store, session_id) == 3, "A overwrote the state of a session it lost"
        assert owner_of(store, session_id) == identity(b)
    finally:
        if on_a is not None:
            await on_a.close()
    # Reconnecting to A relays to B (the store's owner), which restores the stored state.
    mark_b = LogMark(b)
    client = await connect(a.url(ROUTE), token)
    try:
        assert attributes(await pull(client))["value"]["value"] == 3
    finally:
        await client.close()
    mark_b.wait_for(rf"Restored app /counter, session '{re.escape(session_id[:12])}'")
    assert runs_of(runs, session_id) == [a.pid, b.pid]

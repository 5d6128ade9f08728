"""What the session store holds, and for how long (issue 10, item 4).

Real `aperture serve` processes and a real redis-server. Churned sessions leave nothing behind;
every stored session expires on its own (a TTL); a graceful shutdown releases its sessions (owner
"") and keeps them for the other instances; the request's cookies, `Authorization` and other
headers never reach Redis; and the bytes stored per session for the example apps, after a page
view and after a typical interaction, stay well below a whole document.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from bokeh.util.token import get_session_id

from tests.support.redis import RedisServer, stored_key, wait_stored
from tests.support.servers import ServerProcess
from tests.support.wsclient import BokehClient, fetch_token, model_changed, ws_url

pytestmark = pytest.mark.timeout(60)

SLIDERS = "examples/sliders.py"
SESSIONS = 50


def ttl_ms(unused_lifetime_ms: int = 15_000, check_ms: int = 17_000) -> int:
    """How long a session's record lives after its last write: max(60 s, 2 x (the two flags))."""
    return max(60_000, 2 * (unused_lifetime_ms + check_ms))


def store_args(redis: RedisServer) -> list[str]:
    return ["--session-store", redis.url, "--session-store-flush", "100"]


@pytest.fixture
def store(redis_server: RedisServer) -> Iterator[Any]:
    """A redis-py client of the test's redis-server."""
    client = redis_server.client()
    yield client
    client.close()
    # RedisServer.stop() leaves the pipe of redis-server's stderr open (a ResourceWarning, an error
    # here); nothing reads it after the start, and redis-server logs to its file.
    proc = redis_server.proc
    if proc is not None and proc.stderr is not None:
        proc.stderr.close()


@pytest.fixture
def started() -> Iterator[list[ServerProcess]]:
    """Servers a test started; all stopped (by PID) at teardown."""
    servers: list[ServerProcess] = []
    yield servers
    for server in servers:
        server.stop()


def find(doc: Any, **attributes: Any) -> str:
    """The id of the first model in a pulled document whose attributes include `attributes`."""
    stack = [doc]
    while stack:
        node = stack.pop(0)
        if isinstance(node, dict):
            found = node.get("attributes", {})
            if node.get("type") == "object" and all(found.get(k) == v for k, v in attributes.items()):
                return str(node["id"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    raise AssertionError(f"no model with {attributes}")


async def change(url: str, token: str, changes: list[tuple[dict[str, Any], Any]], **connect: Any) -> None:
    """Open a page's websocket and set the `value` of each model found by its attributes."""
    client = await BokehClient.connect(ws_url(url), token, **connect)
    try:
        doc = (await client.pull()).content
        for attributes, value in changes:
            reply = await client.request("PATCH-DOC", model_changed(find(doc, **attributes), "value", value))
            assert reply.msgtype == "OK", reply.content
    finally:
        await client.close()


async def document_size(url: str, token: str) -> int:
    """Bytes of the session's whole document as PULL-DOC sends it (JSON text and binary buffers)."""
    client = await BokehClient.connect(ws_url(url), token)
    try:
        pulled = await client.pull()
        return len(json.dumps(pulled.content)) + sum(len(b) for b in pulled.buffers.values())
    finally:
        await client.close()


# -- churn and expiry ---------------------------------------------------------------------------------


def test_churned_sessions_leave_nothing_in_the_store(redis_server, store, started):
    server = ServerProcess(
        [SLIDERS],
        [*store_args(redis_server), "--unused-session-lifetime", "1000", "--check-unused-sessions", "500"],
    )
    started.append(server)
    server.start()
    url = server.url("/sliders")
    for _ in range(SESSIONS):  # page views, no websocket: each is discarded a second later
        key = stored_key("/sliders", get_session_id(fetch_token(url)))
        assert 0 < store.pttl(key) <= ttl_ms(1000, 500), "registered before the page was answered"

    async def use(value: float) -> None:  # a page that opens its websocket, changes something, leaves
        token = await asyncio.to_thread(fetch_token, url)
        key = stored_key("/sliders", get_session_id(token))
        client = await BokehClient.connect(ws_url(url), token)
        try:
            doc = (await client.pull()).content
            reply = await client.request(
                "PATCH-DOC", model_changed(find(doc, name="amplitude"), "value", value)
            )
            assert reply.msgtype == "OK", reply.content
            await asyncio.to_thread(wait_stored, store, key, repr(value).encode())
            assert 0 < store.pttl(key) <= ttl_ms(1000, 500)  # writes keep the expiry
        finally:
            await client.close()

    async def use_some() -> None:
        await asyncio.gather(*(use(1.5 + n / 8) for n in range(10)))

    asyncio.run(use_some())
    for key in redis_server.session_keys():
        assert 0 < store.pttl(key) <= ttl_ms(1000, 500), key

    deadline = time.monotonic() + 15
    while redis_server.session_keys():
        assert time.monotonic() < deadline, f"sessions left in the store:\n{server.logs()[-3000:]}"
        time.sleep(0.1)
    assert [k for k in store.scan_iter("aperture:*") if not k.startswith(b"aperture:peer:")] == []
    assert store.exists(f"aperture:peer:127.0.0.1:{server.port}|")  # the server itself lives on
    assert "Traceback" not in server.logs()


def test_graceful_shutdown_releases_sessions_and_keeps_them(redis_server, store, started):
    server = ServerProcess([SLIDERS], store_args(redis_server))
    started.append(server)
    server.start()
    url = server.url("/sliders")
    tokens = [fetch_token(url) for _ in range(5)]
    asyncio.run(change(url, tokens[0], [({"name": "amplitude"}, 3.25), ({"name": "title"}, "kept")]))
    changed = stored_key("/sliders", get_session_id(tokens[0]))
    wait_stored(store, changed, b"kept")
    keys = redis_server.session_keys()
    assert len(keys) == len(tokens)
    assert {store.hget(key, "owner") for key in keys} == {f"127.0.0.1:{server.port}|".encode()}

    assert server.stop() == 0  # SIGTERM
    assert "Released 5 session(s) to the other instances" in server.logs()
    assert redis_server.session_keys() == keys
    for key in keys:
        assert store.hget(key, "owner") == b""
        assert store.hget(key, "app") == b"/sliders"
        assert 0 < store.pttl(key) <= ttl_ms()
    fields = store.hgetall(changed)
    assert any(b"3.25" in value for value in fields.values()) and any(b"kept" in v for v in fields.values())
    assert list(store.scan_iter("aperture:peer:*")) == []  # its heartbeat is gone


# -- what is stored -----------------------------------------------------------------------------------


def spellings(secret: str) -> list[bytes]:
    """The secret as is, and the inner part of its base64 at each of the three alignments."""
    raw = secret.encode()
    found = [raw]
    for shift in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            found.append(encode(b"\0" * shift + raw)[4:-4])
    return found


def everything_in(store: Any) -> bytes:
    """Every key of the Redis database with every field and value, as one byte string."""
    parts: list[bytes] = []
    for key in store.scan_iter("*"):
        parts.append(key)
        kind = store.type(key)
        if kind == b"hash":
            for name, value in store.hgetall(key).items():
                parts += [name, value]
        elif kind == b"string":
            parts.append(store.get(key))
        else:
            parts.append(store.dump(key))
    return b"\n".join(parts)


def test_cookies_and_headers_are_not_stored(redis_server, store, started):
    server = ServerProcess(["tests/apps/store/whoami.py"], store_args(redis_server))
    started.append(server)
    server.start()
    tag = uuid.uuid4().hex
    secrets = {
        "cookie": f"cookie-secret-{tag}",
        "authorization": f"authorization-secret-{tag}",
        "header": f"header-secret-{tag}",
    }
    headers = {
        "Cookie": f"session={secrets['cookie']}; theme=dark",
        "Authorization": f"Bearer {secrets['authorization']}",
        "X-Tenant-Key": secrets["header"],
    }
    url = server.url("/whoami")
    token = fetch_token(url, headers)
    marker = f"changed-{tag[:8]}"
    asyncio.run(
        change(url, token, [({"name": "amplitude"}, 2.5), ({"name": "title"}, marker)], headers=headers)
    )
    session_id = get_session_id(token)
    # The app saw the cookie and both headers (it stores what it made of them, not them).
    wait_stored(store, stored_key("/whoami", session_id), b"theme=dark, authorized=True, tenant=True")

    dump = everything_in(store)
    assert marker.encode() in dump and b"aperture:peer:" in dump
    for what, secret in secrets.items():
        for spelling in spellings(secret):
            assert spelling not in dump, f"the {what} is in the store ({spelling!r})"
    payload = token.split(".")[0]
    for text in [token, payload, session_id]:
        assert text.encode() not in dump


# -- bytes per session ----------------------------------------------------------------------------------

# route: (app path, the interaction, the changes a client makes, what the store holds once they are in)
EXAMPLES: dict[str, tuple[str, str, list[tuple[dict[str, Any], Any]], bytes]] = {
    "/sliders": (
        "examples/sliders.py",
        "5 slider moves, a new title",
        [
            ({"name": "amplitude"}, 2.0),
            ({"name": "frequency"}, 2.0),
            ({"name": "phase"}, 1.0),
            ({"name": "offset"}, 0.5),
            ({"name": "amplitude"}, 3.0),
            ({"name": "title"}, "moved"),
        ],
        b"moved",
    ),
    "/streaming": ("examples/streaming.py", "5 s of streaming (~50 points)", [], b""),
    "/dashboard": (
        "examples/dashboard",
        "2 selections",
        [({"name": "signal"}, "damped"), ({"name": "signal"}, "square")],
        b"square: min",
    ),
    "/panel_dashboard": (
        "examples/panel_dashboard.py",
        "3 widget changes (new plot, new table data)",
        [({"title": "Samples"}, 120), ({"title": "Noise"}, 0.3), ({"title": "Signal"}, "cosine")],
        b"120 samples",
    ),
}


def footprint(store: Any, key: str) -> tuple[int, int]:
    """(sum of field name and value lengths, Redis MEMORY USAGE) of one session's hash."""
    fields = store.hgetall(key)
    assert fields, f"nothing stored under {key}"
    return sum(len(n) + len(v) for n, v in fields.items()), int(store.memory_usage(key, samples=0))


def test_bytes_stored_per_session_for_the_examples(redis_server, store, started, capsys):
    server = ServerProcess([app for app, *_ in EXAMPLES.values()], store_args(redis_server), start_timeout=60)
    started.append(server)
    server.start()
    views: dict[str, tuple[str, str, tuple[int, int]]] = {}
    for route in EXAMPLES:
        token = fetch_token(server.url(route))
        key = stored_key(route, get_session_id(token))
        views[route] = (token, key, footprint(store, key))  # registered before the page was answered
    streaming_since = time.monotonic()

    for route, (_, _, changes, done) in EXAMPLES.items():
        if changes:
            token, key, _ = views[route]
            asyncio.run(change(server.url(route), token, changes))
            wait_stored(store, key, done)
    time.sleep(max(0.0, 5.0 - (time.monotonic() - streaming_since)))  # let it stream for 5 s
    _, key, _ = views["/streaming"]
    then = store.hgetall(key)
    deadline = time.monotonic() + 5
    while store.hgetall(key) == then:  # one more flush, after the 5 s
        assert time.monotonic() < deadline, "the streamed points were not stored"
        time.sleep(0.02)

    rows = []
    for route, (_, interaction, _, _) in EXAMPLES.items():
        token, key, (viewed, viewed_memory) = views[route]
        used, used_memory = footprint(store, key)
        document = asyncio.run(document_size(server.url(route), token))
        rows.append(
            f"| `{route}` | {viewed} B / {viewed_memory} B | {interaction} | {used} B / {used_memory} B "
            f"| {document} B |"
        )
        assert 0 < viewed < 1024, (route, viewed)  # a page view stores the record, not the document
        assert viewed < used < document, (route, viewed, used, document)  # the changes, not all of it
    with capsys.disabled():
        print(
            "\n| app | after a page view (fields / MEMORY USAGE) | interaction | after it | whole document |"
        )
        print("|---|---|---|---|---|")
        print("\n".join(rows))

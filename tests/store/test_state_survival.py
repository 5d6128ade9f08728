"""A session's state survives the loss or restart of the process that runs it (issue 10, items 1-2).

Real `aperture serve` processes share a real redis-server (`--session-store`, flushing every
100 ms). A client changes a session on instance A the way a browser does (raw Bokeh protocol:
widget values, button clicks) while a periodic callback streams and patches; the test waits until
the store holds the last change (polling the session's Redis hash, not sleeping), takes A's
document with a second `bokeh.client.pull_session`, then kills or restarts A. The same session
opened on the survivor (or the restarted instance) must serialize exactly as A's last document
(`Document.to_json(deferred=False)`), and its Python callbacks must now run there.

Where a rebuild cannot match (an app whose structure is random), the survivor logs that and
serves a fresh, working document; a callback that raises while stored values are put back is
logged and does not break the session.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import os
import re
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from bokeh.client import pull_session
from bokeh.document import Document
from bokeh.util.token import generate_jwt_token, generate_session_id

from tests.support.redis import RedisServer, stored_key, wait_stored
from tests.support.servers import LogMark, ServerProcess
from tests.support.wsclient import BokehClient, model_changed, model_id, ws_url

pytestmark = pytest.mark.timeout(60)

APPS = "tests/apps/store"
X = np.linspace(0, 2 * np.pi, 50)  # as in tests/apps/store/state.py

Action = tuple[str, str, Any]  # ("set", model name, value) or ("click", button name, None)


def set_value(name: str, value: Any) -> Action:
    return ("set", name, value)


def click(name: str) -> Action:
    return ("click", name, None)


# -- servers and the store ---------------------------------------------------------------------


def store_args(redis: RedisServer) -> list[str]:
    return ["--session-store", redis.url, "--session-store-flush", "100"]


def start_all(*servers: ServerProcess) -> None:
    """Start several servers at once (each start waits for its ready line)."""
    with ThreadPoolExecutor(len(servers)) as pool:
        futures = [pool.submit(server.start) for server in servers]
    for future in futures:
        future.result()


@pytest.fixture
def started() -> Iterator[list[ServerProcess]]:
    """Servers a test started; all stopped (by PID) at teardown."""
    servers: list[ServerProcess] = []
    yield servers
    for server in servers:
        server.stop()


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


def identity(server: ServerProcess) -> bytes:
    return f"127.0.0.1:{server.port}|".encode()


def kill(server: ServerProcess) -> None:
    os.kill(server.pid, signal.SIGKILL)
    server.stop()  # reaps it


# -- clients ---------------------------------------------------------------------------------------


def button_click(button: str) -> dict[str, Any]:
    event = {
        "type": "event",
        "name": "button_click",
        "values": {"type": "map", "entries": [["model", {"id": button}]]},
    }
    return {"events": [{"kind": "MessageSent", "msg_type": "bokeh_event", "msg_data": event}]}


def act(server: ServerProcess, route: str, session_id: str, *actions: Action) -> None:
    """Open the session's websocket as a page would and send each change, waiting for its OK."""

    async def run() -> None:
        token = generate_jwt_token(session_id)
        client = await BokehClient.connect(ws_url(server.url(route)), token)
        try:
            doc = (await client.pull()).content["doc"]
            for kind, name, value in actions:
                target = model_id(doc, name)
                content = model_changed(target, "value", value) if kind == "set" else button_click(target)
                reply = await client.request("PATCH-DOC", content)
                assert reply.msgtype == "OK", (kind, name, reply.content)
        finally:
            await client.close()

    asyncio.run(run())


def pulled(server: ServerProcess, route: str, session_id: str) -> Document:
    """The session's document as `bokeh.client` pulls it."""
    with pull_session(session_id=session_id, url=server.url(route)) as session:
        return session.document


def canonical(doc: Document) -> str:
    return json.dumps(doc.to_json(deferred=False))


def assert_same_document(expected: Document, actual: Document, logs: str) -> None:
    before, after = canonical(expected), canonical(actual)
    if before != after:
        diff = difflib.unified_diff(
            json.dumps(json.loads(before), indent=1, sort_keys=True).splitlines(),
            json.dumps(json.loads(after), indent=1, sort_keys=True).splitlines(),
            "before",
            "after",
            lineterm="",
        )
        pytest.fail("the restored document differs:\n" + "\n".join(list(diff)[:120]) + "\n" + logs[-3000:])


def model(doc: Document, name: str) -> Any:
    found = doc.get_model_by_name(name)
    assert found is not None, f"no model named {name!r}"
    return found


def restored_line(route: str, session_id: str) -> str:
    return (
        re.escape(f"Restored app {route}, session '{session_id[:12]}' from the session store")
        + r" \((\d+) properties, (\d+) models made after the build"
    )


# -- the state app: change everything, then check it ------------------------------------------------

STATE = "/state"


def change_everything(server: ServerProcess, store: Any, session_id: str) -> str:
    """Change every kind of state on `server`; returns the marker of the last change, once stored."""
    act(
        server,
        STATE,
        session_id,
        set_value("amplitude", 2.5),
        set_value("kind", "cosine"),
        set_value("target", 8),  # the periodic callback streams (rollover 5) and patches up to 8
        click("add"),
        click("add"),
        click("patch"),
        click("grow"),
        click("grow"),
        click("retitle"),
        click("extra"),
    )
    key = stored_key(STATE, session_id)
    wait_stored(store, key, b'"n",[4,5,6,7,8]')  # the periodic callback is done
    marker = f"final-{session_id[:8]}"
    act(server, STATE, session_id, set_value("label", marker))
    wait_stored(store, key, marker.encode())
    return marker


def check_changed(doc: Document, marker: str, pid: int) -> None:
    """`doc` holds what change_everything did (so an unrestored document could not pass)."""
    assert model(doc, "amplitude").value == 2.5
    assert model(doc, "kind").value == "cosine"
    assert model(doc, "label").value == marker
    assert model(doc, "plot").title.text == marker
    assert np.allclose(model(doc, "curve").data["y"], 2.5 * np.cos(X))
    assert dict(model(doc, "log").data) == {"n": [1, 2], "who": ["row 1", "row 2"]}
    assert list(model(doc, "ticks").data["n"]) == [4, 5, 6, 7, 8]
    assert list(model(doc, "cells").data["v"]) == [10, 7, 8, 6]
    names = [child.name for child in model(doc, "panel").children]
    assert names == [None, "added-1", "note-1", "added-3", "note-3"]
    assert doc.title == "State again"
    assert [root.name for root in doc.roots] == ["layout", "root-1"]
    assert model(doc, "pid").text == f"pid={pid}"


def check_works_on(server: ServerProcess, store: Any, session_id: str) -> None:
    """Clicks, widget changes and the periodic callback now run on `server`, which stores them."""
    act(
        server,
        STATE,
        session_id,
        click("add"),
        click("grow"),
        set_value("amplitude", 4.0),
        set_value("target", 10),
    )
    fields = wait_stored(store, stored_key(STATE, session_id), b'"n",[6,7,8,9,10]')
    assert fields[b"owner"] == identity(server)
    doc = pulled(server, STATE, session_id)
    assert model(doc, "pid").text == f"pid={server.pid}"
    assert dict(model(doc, "log").data) == {"n": [1, 2, 3], "who": ["row 1", "row 2", "row 3"]}
    names = [child.name for child in model(doc, "panel").children]
    assert names == [None, "added-1", "note-1", "added-3", "note-3", "added-5", "note-5"]
    assert np.allclose(model(doc, "curve").data["y"], 4.0 * np.cos(X))
    assert list(model(doc, "ticks").data["n"]) == [6, 7, 8, 9, 10]
    ids = [m.id for m in doc.models]
    assert len(ids) == len(set(ids))


# -- failover ---------------------------------------------------------------------------------------


def test_failover_to_another_instance_keeps_the_document_exactly(redis_server, store, started):
    a = ServerProcess([f"{APPS}/state.py"], store_args(redis_server))
    b = ServerProcess([f"{APPS}/state.py"], store_args(redis_server))
    started += [a, b]
    start_all(a, b)
    session_id = generate_session_id()
    marker = change_everything(a, store, session_id)
    last = pulled(a, STATE, session_id)
    check_changed(last, marker, a.pid)
    key = stored_key(STATE, session_id)
    assert store.hget(key, "owner") == identity(a)

    kill(a)
    mark = LogMark(b)
    restored = pulled(b, STATE, session_id)
    assert_same_document(last, restored, b.logs())
    mark.wait_for(re.escape(f"Taking over session '{session_id[:12]}' of {STATE} from 127.0.0.1:{a.port}|"))
    found = re.search(restored_line(STATE, session_id), mark.new())
    assert found and int(found.group(2)) > 0, mark.new()

    check_works_on(b, store, session_id)
    assert "Traceback" not in b.logs(), b.logs()


# -- restart of a single instance ---------------------------------------------------------------------


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_restart_on_the_same_port_brings_the_session_back(redis_server, store, started, how):
    a = ServerProcess([f"{APPS}/state.py"], store_args(redis_server))
    started.append(a)
    a.start()
    session_id = generate_session_id()
    marker = change_everything(a, store, session_id)
    last = pulled(a, STATE, session_id)
    check_changed(last, marker, a.pid)
    key = stored_key(STATE, session_id)

    if how == "SIGTERM":
        a.stop()  # graceful: flushes and releases its sessions
        assert store.hget(key, "owner") == b"", "a graceful shutdown releases the session"
        previous = "a stopped instance"
    else:
        kill(a)
        assert store.hget(key, "owner") == identity(a)
        previous = f"127.0.0.1:{a.port}|"
    again = ServerProcess([f"{APPS}/state.py"], store_args(redis_server), port=a.port)
    started.append(again)
    again.start()
    mark = LogMark(again)
    restored = pulled(again, STATE, session_id)
    assert_same_document(last, restored, again.logs())
    mark.wait_for(re.escape(f"Taking over session '{session_id[:12]}' of {STATE} from {previous}"))
    mark.wait_for(restored_line(STATE, session_id))

    check_works_on(again, store, session_id)
    assert "Traceback" not in again.logs(), again.logs()


# -- what cannot be restored ------------------------------------------------------------------------


def test_a_random_structure_falls_back_to_a_fresh_document(redis_server, store, started):
    a = ServerProcess([f"{APPS}/lottery.py"], store_args(redis_server))
    b = ServerProcess([f"{APPS}/lottery.py"], store_args(redis_server))
    started += [a, b]
    start_all(a, b)
    session_id = generate_session_id()
    act(a, "/lottery", session_id, click("button"), click("button"))
    key = stored_key("/lottery", session_id)
    first = wait_stored(store, key, b"clicks: 2")
    assert model(pulled(a, "/lottery", session_id), "count").text == "clicks: 2"

    kill(a)
    mark = LogMark(b)
    fresh = pulled(b, "/lottery", session_id)  # PULL-DOC works
    mark.wait_for(
        re.escape(f"Could not restore app /lottery, session '{session_id[:12]}' from the session store: ")
        + ".*; serving a fresh document"
    )
    assert not re.search(restored_line("/lottery", session_id), mark.new())
    assert model(fresh, "count").text == "clicks: 0"
    assert model(fresh, "pid").text == "pid=none"

    act(b, "/lottery", session_id, click("button"))
    fields = wait_stored(store, key, b"clicks: 1")  # the fresh document is the one stored now
    assert fields[b"owner"] == identity(b)
    assert fields[b"fp"] != first[b"fp"]
    after = pulled(b, "/lottery", session_id)
    assert model(after, "count").text == "clicks: 1"
    assert model(after, "pid").text == f"pid={b.pid}"


def test_a_callback_raising_during_restore_is_logged_and_the_session_works(redis_server, store, started):
    a = ServerProcess([f"{APPS}/fragile.py"], store_args(redis_server))
    b = ServerProcess([f"{APPS}/fragile.py"], store_args(redis_server))
    started += [a, b]
    start_all(a, b)
    session_id = generate_session_id()
    act(a, "/fragile", session_id, click("remember"), set_value("slider", 7))
    key = stored_key("/fragile", session_id)
    wait_stored(store, key, b"7 (remembered 1)")
    last = pulled(a, "/fragile", session_id)
    assert model(last, "report").text == "7 (remembered 1)"

    kill(a)
    mark = LogMark(b)
    restored = pulled(b, "/fragile", session_id)
    assert_same_document(last, restored, b.logs())  # the stored values win over what the callback did
    mark.wait_for(r"Restoring \S+\.value raised IndexError: list index out of range")
    mark.wait_for(restored_line("/fragile", session_id) + r", 1 callbacks raised\)")

    act(b, "/fragile", session_id, click("remember"), set_value("slider", 3))
    wait_stored(store, key, b"3 (remembered 7)")
    after = pulled(b, "/fragile", session_id)
    assert model(after, "report").text == "3 (remembered 7)"
    assert model(after, "pid").text == f"pid={b.pid}"

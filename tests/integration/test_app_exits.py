"""App code never takes the server down (issue 8, item 4).

`sys.exit()`, `KeyboardInterrupt` and a `BaseException` subclass of the app's own (`AppAbort`),
raised by tests/apps/exits wherever its `?at=` argument says: while the page is built, in
`process_request`, in each kind of session callback, in a property `on_change` or `on_event`
callback triggered by a client's PATCH-DOC, in every lifecycle hook and in the document's
`on_session_destroyed`. For each, the test checks that

(a) only the offending request or session fails: a 500 page with the summary, an ERROR reply
    (and the connection keeps working), or a logged callback error;
(b) the log names the app and the session;
(c) a session opened before keeps working (a slider change round-trips), and the server is still
    up and serves a new page.

Both ways of running sync app code are covered: on the `--callback-threads` pool (the default)
and on the event loop (`--callback-threads 0`). A real SIGINT still stops the server.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest

from aperture.security.tokens import get_session_id
from tests.support.processes import signal_pid, wait_unreaped
from tests.support.servers import REPO_ROOT, LogMark, ServerProcess
from tests.support.wsclient import BokehClient, fetch_token, model_changed, model_id, ws_url

APP = "tests/apps/exits"
ROUTE = "/exits"
KINDS = ["SystemExit", "KeyboardInterrupt", "AppAbort"]
SUMMARY = {  # what the page and the ERROR reply say the app raised
    "SystemExit": "SystemExit: 3",
    "KeyboardInterrupt": "KeyboardInterrupt",
    "AppAbort": "AppAbort: the app aborted",
}
FAST_DISCARD = ["--unused-session-lifetime", "1000", "--check-unused-sessions", "200"]


@pytest.fixture(scope="module")
def server(module_server_factory) -> ServerProcess:
    return module_server_factory([APP], FAST_DISCARD)


@pytest.fixture(scope="module")
def inline_server(module_server_factory) -> ServerProcess:
    return module_server_factory([APP], [*FAST_DISCARD, "--callback-threads", "0"])


@pytest.fixture(autouse=True)
async def release_clients():
    yield
    while Client.opened:
        await Client.opened.pop().close(timeout=2)


# -- helpers -------------------------------------------------------------------------------------


class Client:
    """A websocket session of the exits app; remembers its session id and its slider."""

    opened: list[BokehClient] = []  # released by `release_clients`, even after a failure

    def __init__(self, ws: BokehClient, session_id: str, doc: dict[str, Any]) -> None:
        self.ws = ws
        self.session_id = session_id
        self.doc = doc
        self.value = 1
        Client.opened.append(ws)

    @classmethod
    async def open(cls, server: ServerProcess, query: str = "") -> Client:
        page = server.url(ROUTE)
        token = fetch_token(page + query)
        ws = await BokehClient.connect(ws_url(page), token)
        doc = (await ws.pull()).content
        return cls(ws, get_session_id(token), doc)

    @property
    def short_id(self) -> str:
        return self.session_id[:12]

    async def round_trip(self) -> None:
        """Change the slider; the div's new text comes back, then OK."""
        self.value += 1
        slider = model_id(self.doc, "slider")
        msgid = await self.ws.send("PATCH-DOC", model_changed(slider, "value", self.value))
        ok, before = await self.ws.reply_to(msgid)
        assert ok.msgtype == "OK", ok.content
        texts = [e.get("new") for m in before for e in m.content["events"] if e.get("attr") == "text"]
        assert f"value={self.value}" in texts, before

    async def runs(self) -> int:
        """How often the session's timer callback ran so far."""
        return int(text_of((await self.ws.pull()).content, "runs"))


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=20) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode("utf-8", "replace")


def assert_up(server: ServerProcess) -> None:
    assert server.running, server.logs()
    status, _ = get(server.url(ROUTE))
    assert status == 200


def text_of(doc: Any, name: str) -> str:
    """The `text` of the model called `name` in a pulled document."""
    if isinstance(doc, dict):
        attributes = doc.get("attributes", {})
        if doc.get("type") == "object" and isinstance(attributes, dict) and attributes.get("name") == name:
            return str(attributes["text"])
        children = list(doc.values())
    else:
        children = list(doc) if isinstance(doc, list) else []
    for child in children:
        try:
            return text_of(child, name)
        except LookupError:
            pass
    raise LookupError(name)


def button_click(button: str) -> dict[str, Any]:
    event = {
        "type": "event",
        "name": "button_click",
        "values": {"type": "map", "entries": [["model", {"id": button}]]},
    }
    return {"events": [{"kind": "MessageSent", "msg_type": "bokeh_event", "msg_data": event}]}


def app_session(client: Client) -> str:
    """How the log names a session: its app and the start of its id."""
    return re.escape(f"app {ROUTE}, session '{client.short_id}'")


# -- while a page is built ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_exit_while_building_a_page_fails_that_page_only(server, kind):
    mark = LogMark(server)
    bystander = await Client.open(server)
    session_id = uuid.uuid4().hex
    status, body = get(server.url(f"{ROUTE}?at=build&kind={kind}&bokeh-session-id={session_id}"))
    assert status == 500
    assert SUMMARY[kind] in body and "raised an error while building its page" in body
    mark.wait_for(re.escape(f"Error running app {ROUTE} for session '{session_id[:12]}': {SUMMARY[kind]}"))
    await bystander.round_trip()
    assert_up(server)


async def test_exit_in_process_request_fails_that_page_only(server):
    mark = LogMark(server)
    bystander = await Client.open(server)
    status, body = get(server.url(f"{ROUTE}?at=process_request&kind=SystemExit"))
    assert status == 500 and SUMMARY["SystemExit"] in body
    mark.wait_for(re.escape(f"Error in process_request of app {ROUTE}: SystemExit: 3"))
    await bystander.round_trip()
    assert_up(server)


# -- in a message's callbacks: an ERROR reply, and the connection keeps working ----------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("place", ["on_change", "on_event"])
async def test_exit_in_a_client_triggered_callback_gets_an_error_reply(server, place, kind):
    await _error_reply(server, place, kind)


@pytest.mark.parametrize("kind", ["SystemExit", "KeyboardInterrupt"])
async def test_exit_in_a_callback_on_the_event_loop_gets_an_error_reply(inline_server, kind):
    await _error_reply(inline_server, "on_change", kind)


async def _error_reply(server: ServerProcess, place: str, kind: str) -> None:
    mark = LogMark(server)
    bystander = await Client.open(server)
    client = await Client.open(server, f"?at={place}&kind={kind}")
    if place == "on_change":
        request = model_changed(model_id(client.doc, "trap"), "value", 7)
    else:
        request = button_click(model_id(client.doc, "button"))
    reply, _ = await client.ws.reply_to(await client.ws.send("PATCH-DOC", request), timeout=5)
    assert reply.msgtype == "ERROR", reply
    assert reply.content["text"].startswith(SUMMARY[kind]), reply.content
    assert "Traceback" not in reply.content["text"] and ".py" not in reply.content["text"]
    mark.wait_for(app_session(client) + re.escape(f": PATCH-DOC failed: {SUMMARY[kind]}"))
    await client.round_trip()  # the offending connection itself stays usable
    await bystander.round_trip()
    assert_up(server)


# -- in session callbacks: logged, and the timer keeps running ---------------------------------------

TIMER_CASES = [
    *(pytest.param("periodic", kind, id=f"periodic-{kind}") for kind in KINDS),
    *(pytest.param("periodic_async", kind, id=f"periodic_async-{kind}") for kind in KINDS),
    pytest.param("timeout", "SystemExit", id="timeout-SystemExit"),
    pytest.param("next_tick", "AppAbort", id="next_tick-AppAbort"),
    pytest.param("nolock", "SystemExit", id="nolock-SystemExit"),
]


@pytest.mark.parametrize(("place", "kind"), TIMER_CASES)
async def test_exit_in_a_session_callback_is_logged_and_contained(server, place, kind):
    await _timer(server, place, kind)


async def test_exit_in_a_periodic_callback_on_the_event_loop_is_contained(inline_server):
    await _timer(inline_server, "periodic", "SystemExit")


async def _timer(server: ServerProcess, place: str, kind: str) -> None:
    mark = LogMark(server)
    bystander = await Client.open(server)
    client = await Client.open(server, f"?at={place}&kind={kind}")
    name = (
        "failing_unlocked"
        if place == "nolock"
        else "failing_async"
        if place == "periodic_async"
        else "failing"
    )
    mark.wait_for(re.escape(f"Error in session callback '{name}' of ") + app_session(client))
    mark.wait_for(re.escape(SUMMARY[kind]))
    if place.startswith("periodic"):  # failed runs do not stop the timer
        deadline = time.monotonic() + 10
        while await client.runs() < 3:
            assert time.monotonic() < deadline, "the periodic callback stopped after it raised"
            await asyncio.sleep(0.1)
    await client.round_trip()
    await bystander.round_trip()
    assert_up(server)


# -- in session lifecycle hooks --------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_exit_in_on_session_created_is_logged_like_any_hook_error(server, kind):
    mark = LogMark(server)
    bystander = await Client.open(server)
    client = await Client.open(server, f"?at=session_created&kind={kind}")  # built, as for an Exception
    mark.wait_for(re.escape(f"Error in on_session_created of app {ROUTE}, session '{client.short_id}'"))
    await client.round_trip()
    await bystander.round_trip()
    assert_up(server)


DESTROY_CASES = [
    *(
        pytest.param("session_destroyed", k, "Error in on_session_destroyed of ", id=f"hook-{k}")
        for k in KINDS
    ),
    *(
        pytest.param(
            "doc_destroyed", k, "Error in a document on_session_destroyed callback of ", id=f"doc-{k}"
        )
        for k in KINDS
    ),
    pytest.param(
        "connection_lost", "SystemExit", "Error in a ConnectionLost callback of ", id="lost-SystemExit"
    ),
    pytest.param("connection_lost", "AppAbort", "Error in a ConnectionLost callback of ", id="lost-AppAbort"),
]


@pytest.mark.parametrize(("place", "kind", "logged"), DESTROY_CASES)
async def test_exit_when_a_session_ends_is_logged_and_contained(server, place, kind, logged):
    mark = LogMark(server)
    bystander = await Client.open(server)
    client = await Client.open(server, f"?at={place}&kind={kind}")
    await client.ws.close()  # the session is discarded a second later, running its hooks
    mark.wait_for(re.escape(logged) + app_session(client))
    await bystander.round_trip()
    assert_up(server)
    if place != "connection_lost":  # and the clean-up job survived: it discards the next one too
        again = await Client.open(server, f"?at={place}&kind={kind}")
        await again.ws.close()
        mark.wait_for(re.escape(logged) + app_session(again))
        assert_up(server)


# -- server-wide hooks, start-up and shutdown ----------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_exit_in_server_hooks_neither_stops_start_up_nor_shutdown(server_factory, tmp_path, kind):
    exits_events, dirapp_events = tmp_path / "exits.txt", tmp_path / "dirapp.txt"
    env = {
        "EXITS_HOOKS": f"server_loaded:{kind},server_unloaded:{kind}",
        "EXITS_EVENTS": str(exits_events),
        "DIRAPP_EVENTS": str(dirapp_events),
    }
    srv = server_factory([APP, "tests/apps/dirapp"], env=env)
    srv.wait_for_log(re.escape(f"Error in on_server_loaded of app {ROUTE}"))
    client = await Client.open(srv)
    await client.round_trip()
    await client.ws.close()
    assert get(srv.url("/dirapp"))[0] == 200
    assert srv.stop() == 0, srv.logs()
    logs = srv.logs()
    assert f"Error in on_server_unloaded of app {ROUTE}" in logs, logs
    assert SUMMARY[kind] in logs
    assert "Stopped in" in logs, logs
    assert exits_events.read_text().splitlines() == ["server_loaded", "server_unloaded"]
    assert "server_unloaded" in dirapp_events.read_text().splitlines()  # the next app's hook still ran


def test_exit_while_an_app_loads_is_a_clear_start_up_error(tmp_path):
    app = tmp_path / "quits"
    app.mkdir()
    (app / "main.py").write_text("from bokeh.io import curdoc\n")
    (app / "app_hooks.py").write_text("import sys\nsys.exit(3)\n")
    result = subprocess.run(
        [sys.executable, "-m", "aperture", "serve", str(app), "--port", "0", "--address", "127.0.0.1"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result
    assert f"Error loading {app}" in result.stderr and "SystemExit: 3" in result.stderr, result.stderr


async def test_a_real_sigint_still_stops_the_server(server_factory):
    srv = server_factory([APP])
    mark = LogMark(srv)
    client = await Client.open(srv, "?at=periodic&kind=KeyboardInterrupt")
    mark.wait_for(re.escape("Error in session callback 'failing' of ") + app_session(client))
    await client.round_trip()
    assert srv.running
    signal_pid(srv.pid, signal.SIGINT)
    assert wait_unreaped(srv.pid, 20), "SIGINT did not stop the server"
    mark.wait_for("Received SIGINT")
    assert srv.stop() == 0, srv.logs()

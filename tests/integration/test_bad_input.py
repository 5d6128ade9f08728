"""Bad input gets a clear error and loses nothing.

For every kind of malformed or hostile input this checks three things:

(a) what the offending peer gets: a close with a code inside RFC 6455's 1000..4999 range (never the
    reference's 10000/10001) and a precise reason, or an ERROR reply whose text is short and carries
    no traceback or file path (content ``traceback`` is null), or an HTTP 4xx/5xx that says why;
(b) that a session opened *before* the bad input still works afterwards (slider change -> PATCH-DOC
    with the div text -> OK);
(c) that the server logged a line about it and is still serving.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import socket
import struct
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from aperture.security.tokens import generate_session_id, generate_token, utc_now
from tests.support.servers import REPO_ROOT, LogMark, ServerProcess
from tests.support.wsclient import BokehClient, Closed, fetch_token, model_changed, model_id, ws_url

APPS = "tests/apps"
MAX_MESSAGE = 20_000
SECRET = "x" * 22 + "Y" * 22  # 44 characters, like `aperture secret`
OTHER_SECRET = "HIRUvxfKXZB6mHpwT7L2pXz8mFQsEpZ4uSwQ6bBVvDKi"


# -- servers -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(module_server_factory) -> ServerProcess:
    return module_server_factory(
        [f"{APPS}/demo.py", f"{APPS}/broken.py"],
        ["--websocket-max-message-size", str(MAX_MESSAGE)],
    )


@pytest.fixture(scope="module")
def signed(module_server_factory) -> ServerProcess:
    return module_server_factory(
        [f"{APPS}/demo.py"],
        [],
        env={"BOKEH_SIGN_SESSIONS": "yes", "BOKEH_SECRET_KEY": SECRET},
    )


@pytest.fixture(autouse=True)
def release_clients():
    yield
    while Bystander.opened:
        Bystander.opened.pop().conn.close()


# -- helpers -------------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    body: str
    seconds: float


def get(url: str, timeout: float = 20) -> Response:
    start = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return Response(r.status, r.read().decode("utf-8", "replace"), time.monotonic() - start)
    except urllib.error.HTTPError as e:
        with e:
            return Response(e.code, e.read().decode("utf-8", "replace"), time.monotonic() - start)


class Bystander:
    """A session opened before the bad input; it must keep working afterwards."""

    opened: list[BokehClient] = []  # released by the `release_clients` fixture, even after a failure

    def __init__(self, client: BokehClient, slider: str) -> None:
        self.client = client
        self.slider = slider
        self.value = 1
        Bystander.opened.append(client)

    @classmethod
    async def open(cls, server: ServerProcess, app: str = "/demo") -> Bystander:
        client = await connect(server, app)
        slider = model_id((await client.pull()).content, "slider")
        return cls(client, slider)

    async def round_trip(self) -> None:
        self.value += 1
        msgid = await self.client.send("PATCH-DOC", model_changed(self.slider, "value", self.value))
        ok, before = await self.client.reply_to(msgid)
        assert ok.msgtype == "OK", ok.content
        texts = [e.get("new") for m in before for e in m.content["events"] if e.get("attr") == "text"]
        assert f"value={self.value}" in texts, before

    async def check_and_close(self) -> None:
        await self.round_trip()
        await self.client.close()


async def connect(server: ServerProcess, app: str = "/demo", **kw: Any) -> BokehClient:
    page = server.url(app)
    return await BokehClient.connect(ws_url(page), fetch_token(page), **kw)


async def closed_by_server(client: BokehClient) -> Closed:
    """Read until the server closes the connection; then release the client side at once.

    (`BokehClient.close` would wait for a close echo that never comes on a closed connection.)
    """
    try:
        return await client.closed()
    finally:
        client.conn.close()


async def refused(url: str, token: str | None, **kw: Any) -> Closed:
    """Open a websocket that the server is expected to close right after the upgrade."""
    return await closed_by_server(await BokehClient.connect(url, token, wait_ack=False, **kw))


def assert_close(closed: Closed, code: int, reason: str) -> None:
    assert closed.code is not None and 1000 <= closed.code <= 4999, closed
    assert closed.code not in (10000, 10001)
    assert closed.code == code, closed
    assert closed.reason == reason, closed


def assert_clean_error_text(text: str) -> None:
    assert 0 < len(text) <= 300, text
    assert "Traceback" not in text and 'File "' not in text, text
    assert not re.search(r"/[\w.-]+/[\w./-]+|\.py\b", text), f"file path in {text!r}"


def assert_up(server: ServerProcess) -> None:
    assert server.running
    assert get(server.url("/demo")).status == 200


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def header(msgtype: str = "PULL-DOC-REQ", **extra: Any) -> str:
    return json.dumps({"msgid": "bad1", "msgtype": msgtype, **extra})


# -- frames that break the protocol: close with a precise reason -----------------------------------

PROTOCOL_CASES = [
    pytest.param(
        [b"\x00\x01binary"],
        1002,
        "expected a text frame for the message header, got binary",
        id="binary-header",
    ),
    pytest.param(["{not json"], 1007, "message header is not valid JSON", id="header-not-json"),
    pytest.param(['["PULL-DOC-REQ"]'], 1002, "message header must be a JSON object", id="header-not-object"),
    pytest.param(['{"msgid": "m1"}'], 1002, "message header has no 'msgtype'", id="no-msgtype"),
    pytest.param(['{"msgtype": "PULL-DOC-REQ"}'], 1002, "message header has no 'msgid'", id="no-msgid"),
    pytest.param([header("FOO")], 1002, "unknown message type 'FOO'", id="unknown-msgtype"),
    pytest.param([header("ACK")], 1002, "message type 'ACK' is not accepted by the server", id="ACK"),
    pytest.param([header("OK")], 1002, "message type 'OK' is not accepted by the server", id="OK"),
    pytest.param(
        [header("PULL-DOC-REPLY")],
        1002,
        "message type 'PULL-DOC-REPLY' is not accepted by the server",
        id="PULL-DOC-REPLY",
    ),
    pytest.param(
        [header(num_buffers=-1)],
        1002,
        "'num_buffers' must be a non-negative integer",
        id="num-buffers-negative",
    ),
    pytest.param(
        [header(num_buffers=10**12)],
        1002,
        "'num_buffers' must be at most 1000, got 1000000000000",
        id="num-buffers-huge",
    ),
    pytest.param(
        [header("PATCH-DOC", num_buffers=1), "{}", '{"events": []}', '{"id": "0", "extra": 1}'],
        1002,
        'buffer header must be exactly {"id": <string>}',
        id="buffer-header-extra-keys",
    ),
    pytest.param(
        [header("PATCH-DOC", num_buffers=1), "{}", '{"events": []}', '{"id": "0"}', "not bytes"],
        1002,
        "expected a binary frame for buffer payload, got text",
        id="text-buffer-payload",
    ),
    pytest.param([header(), "{oops"], 1007, "message metadata is not valid JSON", id="metadata-not-json"),
    pytest.param([header(), "{}", "{oops"], 1007, "message content is not valid JSON", id="content-not-json"),
]


@pytest.mark.parametrize(("frames", "code", "reason"), PROTOCOL_CASES)
async def test_protocol_violation_closes_with_a_precise_reason(server, frames, code, reason):
    mark = LogMark(server)
    bystander = await Bystander.open(server)
    client = await connect(server)
    await client.send_frames(*frames)
    assert_close(await closed_by_server(client), code, reason)
    await bystander.check_and_close()
    mark.wait_for(re.escape(f": {reason}"))
    assert_up(server)


async def test_message_larger_than_the_limit_closes_with_1009(server):
    bystander = await Bystander.open(server)
    client = await connect(server)
    await client.send_frames(header(), "{}", json.dumps({"pad": "x" * (MAX_MESSAGE + 100)}))
    assert_close(await closed_by_server(client), 1009, "message too big")
    await bystander.check_and_close()
    assert_up(server)


async def test_message_larger_than_the_limit_is_logged(server):
    mark = LogMark(server)
    client = await connect(server)
    await client.send_frames(header(), "{}", json.dumps({"pad": "x" * (MAX_MESSAGE + 100)}))
    await closed_by_server(client)
    mark.wait_for(r"(?i)too big|max(imum)?[ -]message[ -]size|websocket-max-message-size", timeout=2)


async def test_message_just_under_the_limit_is_accepted(server):
    client = await connect(server)
    reply = await client.request("SERVER-INFO-REQ", {"pad": "x" * (MAX_MESSAGE - 200)})
    assert reply.msgtype == "SERVER-INFO-REPLY"
    await client.close()


# -- well-formed requests that cannot be carried out: ERROR reply, connection stays open ------------


async def error_reply(client: BokehClient, msgtype: str, content: Any) -> dict[str, Any]:
    reply = await client.request(msgtype, content)
    assert reply.msgtype == "ERROR", reply
    assert reply.content["traceback"] is None
    assert_clean_error_text(reply.content["text"])
    return reply.content


async def test_patch_doc_with_an_unknown_model_gets_error_and_connection_stays_usable(server):
    mark = LogMark(server)
    bystander = await Bystander.open(server)
    client = await connect(server)
    slider = model_id((await client.pull()).content, "slider")
    content = await error_reply(client, "PATCH-DOC", model_changed("no-such-model", "value", 3))
    assert "no-such-model" in content["text"]
    # the same connection still works: a good patch runs the callback, a pull sees it
    reply = await client.request("PATCH-DOC", model_changed(slider, "value", 7))
    assert reply.msgtype == "OK"
    assert '"value=7"' in json.dumps((await client.pull()).content)
    await client.close()
    await bystander.check_and_close()
    mark.wait_for(r"PATCH-DOC failed: .*no-such-model")
    assert_up(server)


@pytest.mark.parametrize(
    ("msgtype", "content", "needle"),
    [
        pytest.param("PATCH-DOC", {}, "events", id="patch-doc-without-events"),
        pytest.param("PATCH-DOC", {"events": "nope"}, "events", id="patch-doc-events-not-a-list"),
        pytest.param("PUSH-DOC", {}, "doc", id="push-doc-without-doc"),
    ],
)
async def test_request_without_its_required_member_gets_error(server, msgtype, content, needle):
    bystander = await Bystander.open(server)
    client = await connect(server)
    text = (await error_reply(client, msgtype, content))["text"]
    assert msgtype in text and needle in text, text
    assert (await client.request("SERVER-INFO-REQ")).msgtype == "SERVER-INFO-REPLY"  # still open
    await client.close()
    await bystander.check_and_close()
    assert_up(server)


async def test_request_without_its_required_member_is_logged(server):
    mark = LogMark(server)
    client = await connect(server)
    await error_reply(client, "PATCH-DOC", {})
    await client.close()
    mark.wait_for(r"PATCH-DOC.*events", timeout=2)


# -- tokens and subprotocols: refused right after the upgrade -----------------------------------------


def _token_case(kind: str) -> str:
    session_id = generate_session_id(None, False)
    if kind == "garbage":
        return "!!not-a-token!!"
    if kind == "base64-not-json":
        return b64(b"this is not json at all")
    if kind == "json-not-object":
        return b64(b'["session_id"]')
    if kind == "no-expiry":
        return b64(json.dumps({"session_id": session_id}).encode())
    if kind == "expired":
        # expired 30 days ago: beyond the default --session-reconnect-window (24 h) that still
        # lets a page reconnect with a recently expired token
        return generate_token(session_id, expiration=300, now=utc_now() - 30 * 86400)
    if kind == "empty-session-id":
        return generate_token("")
    raise AssertionError(kind)


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("garbage", "token is malformed: token is not base64"),
        ("base64-not-json", "token is malformed: token is not JSON"),
        ("json-not-object", "token is malformed: token is not a JSON object"),
        ("no-expiry", "token has no session expiry"),
        ("expired", "token has expired"),
        ("empty-session-id", "session id is empty"),
    ],
)
async def test_bad_token_is_refused_with_1008(server, kind, reason):
    mark = LogMark(server)
    bystander = await Bystander.open(server)
    closed = await refused(ws_url(server.url("/demo")), _token_case(kind))
    assert_close(closed, 1008, reason)
    await bystander.check_and_close()
    mark.wait_for(r"refused: " + re.escape(reason))
    assert_up(server)


@pytest.mark.parametrize(
    "subprotocols",
    [
        pytest.param(["bokeh"], id="no-token"),
        pytest.param(["nope", "TOKEN"], id="wrong-first-subprotocol"),
        pytest.param(["bokeh", "TOKEN", "extra"], id="three-subprotocols"),
    ],
)
async def test_missing_or_wrong_subprotocol_is_refused(server, subprotocols):
    mark = LogMark(server)
    bystander = await Bystander.open(server)
    page = server.url("/demo")
    token = fetch_token(page)
    protocols = [token if p == "TOKEN" else p for p in subprotocols]
    closed = await refused(ws_url(page), token, subprotocols=protocols)
    reason = "expected the subprotocols 'bokeh' and a session token"
    assert_close(closed, 1008, reason)
    await bystander.check_and_close()
    mark.wait_for(r"refused: " + re.escape(reason))
    assert_up(server)


async def test_websocket_to_an_unknown_app_is_404(server):
    mark = LogMark(server)
    bystander = await Bystander.open(server)
    token = fetch_token(server.url("/demo"))
    with pytest.raises(HTTPClientError) as info:
        await BokehClient.connect(ws_url(server.url("/nowhere")), token, wait_ack=False)
    assert info.value.code == 404
    await bystander.check_and_close()
    mark.wait_for(r'"GET /nowhere/ws" 404')
    assert_up(server)


async def test_websocket_from_a_disallowed_origin_is_403_before_the_upgrade(server):
    mark = LogMark(server)
    bystander = await Bystander.open(server)
    page = server.url("/demo")
    with pytest.raises(HTTPClientError) as info:
        await BokehClient.connect(
            ws_url(page), fetch_token(page), headers={"Origin": "http://evil.example.com"}, wait_ack=False
        )
    assert info.value.code == 403
    await bystander.check_and_close()
    mark.wait_for(r"Refusing websocket connection from Origin 'http://evil.example.com'")
    assert_up(server)


# -- signed sessions ---------------------------------------------------------------------------------


async def test_signed_server_refuses_a_token_with_a_wrong_signature(signed):
    mark = LogMark(signed)
    bystander = await Bystander.open(signed)
    good = fetch_token(signed.url("/demo"))
    base, _, signature = good.partition(".")
    tampered = f"{base}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"
    other_key = generate_token(
        generate_session_id(OTHER_SECRET.encode(), True), secret=OTHER_SECRET.encode(), signed=True
    )
    for token in (tampered, other_key, base):
        closed = await refused(ws_url(signed.url("/demo")), token)
        assert_close(closed, 1008, "token signature is invalid")
    await bystander.check_and_close()
    mark.wait_for(r"refused: token signature is invalid")
    assert_up(signed)


async def test_signed_server_refuses_an_unsigned_session_id_page_with_403(signed):
    mark = LogMark(signed)
    bystander = await Bystander.open(signed)
    response = get(signed.url("/demo?bokeh-session-id=plain"))
    assert response.status == 403
    assert "Invalid token or session ID" in response.body and "Traceback" not in response.body
    await bystander.check_and_close()
    mark.wait_for(r"invalid signature: 'plain'")
    mark.wait_for(r'"GET /demo\?bokeh-session-id=REDACTED" 403')  # the access log hides the id
    assert_up(signed)


# -- broken peers and floods -------------------------------------------------------------------------


async def test_client_vanishing_mid_message_loses_nothing(server):
    mark = LogMark(server)
    bystander = await Bystander.open(server)
    page = server.url("/demo")
    token = fetch_token(page)
    same_client = await BokehClient.connect(ws_url(page), token)
    same_session = Bystander(same_client, model_id((await same_client.pull()).content, "slider"))
    client = await BokehClient.connect(ws_url(page), token)
    await client.send_frames(header("PATCH-DOC"))  # header only, then the TCP connection drops
    sock = client.conn.stream.socket
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, no close frame
    client.conn.stream.close()
    client.conn.close()
    mark.wait_for(r"Websocket closed")
    await same_session.check_and_close()  # the session the vanished client was on is fine too
    await bystander.check_and_close()
    assert_up(server)


async def _raw(port: int, data: bytes, read: bool = True) -> bytes:
    """Send raw bytes on a fresh TCP connection, read what comes back (if asked), hang up."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(4096), 10) if data and read else b""
    finally:
        writer.close()
        await writer.wait_closed()


async def test_many_garbage_connections_then_a_normal_session_works(server):
    mark = LogMark(server)
    bystander = await Bystander.open(server)
    page = server.url("/demo")
    token = fetch_token(page)
    for i in range(30):
        kind = i % 5
        if kind == 0:  # not HTTP at all
            answer = await _raw(server.port, b"\x16\x03\x01 garbage that is not http\r\n\r\n")
            assert answer == b"" or answer.startswith(b"HTTP/1.1 400")
        elif kind == 1:  # connect and leave
            await _raw(server.port, b"")
        elif kind == 2:  # websocket with a garbage token
            closed = await refused(ws_url(page), f"junk-{i}")
            assert closed.code == 1008 and str(closed.reason).startswith("token is malformed"), closed
        elif kind == 3:  # a good connection that sends binary garbage
            client = await BokehClient.connect(ws_url(page), token)
            await client.send_frames(bytes(range(256)))
            assert (await closed_by_server(client)).code == 1002
        else:  # an upgrade request cut off in the middle of its headers
            await _raw(
                server.port, b"GET /demo/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websock", read=False
            )
    fresh = await Bystander.open(server)
    await fresh.check_and_close()
    await bystander.check_and_close()
    assert len(re.findall(r"refused: token is malformed", mark.new())) >= 6
    assert_up(server)


# -- apps that fail while building a session ------------------------------------------------------------


async def test_broken_app_page_is_500_with_the_summary_and_no_traceback(server):
    mark = LogMark(server)
    bystander = await Bystander.open(server)
    first = get(server.url("/broken"))
    assert first.status == 500
    assert "the data file is missing" in first.body
    assert "Traceback" not in first.body and 'File "' not in first.body
    assert str(REPO_ROOT) not in first.body and "site-packages" not in first.body
    mark.wait_for(r"Traceback[\s\S]*ValueError: the data file is missing")
    again = get(server.url("/broken"), timeout=15)
    assert again.status == 500 and "the data file is missing" in again.body
    assert again.seconds < 5
    await bystander.check_and_close()
    assert_up(server)


def test_broken_app_page_shows_neither_the_file_nor_its_source(server):
    body = get(server.url("/broken")).body
    assert "the data file is missing" in body
    assert "broken.py" not in body and "line 7" not in body and "raise ValueError" not in body


async def test_websocket_with_a_valid_token_for_a_broken_app_is_closed_1011(server):
    mark = LogMark(server)
    bystander = await Bystander.open(server)
    token = generate_token(generate_session_id(None, False))
    closed = await refused(ws_url(server.url("/broken")), token)
    assert_close(closed, 1011, "the application failed to build this session")
    mark.wait_for(r"refused: the app failed: .*the data file is missing")
    await bystander.check_and_close()
    assert get(server.url("/broken")).status == 500
    assert_up(server)


async def test_empty_session_id_is_a_4xx_not_a_hang(server):
    mark = LogMark(server)
    response = get(server.url("/demo?bokeh-session-id="), timeout=15)
    assert 400 <= response.status < 500
    assert "Traceback" not in response.body
    assert response.seconds < 5
    mark.wait_for(r'"GET /demo\?bokeh-session-id=\w*" 4\d\d')
    assert_up(server)

"""Compatibility and limits (issue 8, item 8), each tried against a real server process.

A Unix socket with an origin allow-list; a multi-buffer message that adds up past
--websocket-max-message-size; a client trickling header lines (slowloris); file-descriptor
exhaustion; --exclude-headers Cookie; and the WebSocket-layer warning, which must appear for a
refused frame and never for a normal close.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import select
import socket
import struct
import time
import urllib.request
from pathlib import Path

import pytest

from aperture.config import resolve
from aperture.errors import ConfigError
from aperture.security import tokens
from aperture.security.session_ids import generate_session_id
from tests.support.servers import LogMark, ServerProcess
from tests.support.wsclient import TOKEN_RE, BokehClient, Closed, fetch_token, model_id, ws_url

APPS = "tests/apps"
MAX_MESSAGE = 20_000
LAYER_WARNING = "closed by the WebSocket layer"


# -- helpers: raw HTTP and WebSocket over any stream socket ------------------------------------------


def read_head(sock: socket.socket) -> tuple[int, bytes]:
    """Read an HTTP response head; (status, the bytes that came after it)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed in the response head: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), rest


def read_to_end(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def upgrade_request(path: str, token: str, origin: str | None, host: str = "localhost") -> bytes:
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        f"Sec-WebSocket-Protocol: bokeh, {token}",
    ]
    if origin is not None:
        lines.append(f"Origin: {origin}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_frame(sock: socket.socket, pending: bytearray) -> tuple[int, bytes]:
    """One unmasked server frame: (opcode, payload); `pending` holds bytes already read."""

    def need(count: int) -> bytes:
        while len(pending) < count:
            chunk = sock.recv(65536)
            assert chunk, "connection closed inside a frame"
            pending.extend(chunk)
        taken = bytes(pending[:count])
        del pending[:count]
        return taken

    first, second = need(2)
    size = second & 0x7F
    if size == 126:
        (size,) = struct.unpack("!H", need(2))
    elif size == 127:
        (size,) = struct.unpack("!Q", need(8))
    return first & 0x0F, need(size)


def client_frame(payload: bytes, first_byte: int = 0x81) -> bytes:
    """A masked client frame (RFC 6455 §5.3); the mask of zeros leaves the payload as it is."""
    assert len(payload) < 126
    return bytes([first_byte, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


def open_raw_websocket(sock: socket.socket, path: str, token: str, origin: str | None = None) -> int:
    """Send an upgrade on a connected socket; the status, and for 101 the ACK read off the wire."""
    sock.sendall(upgrade_request(path, token, origin))
    status, rest = read_head(sock)
    if status == 101:
        pending = bytearray(rest)
        opcode, header = read_frame(sock, pending)
        assert opcode == 1 and json.loads(header)["msgtype"] == "ACK", header
        read_frame(sock, pending), read_frame(sock, pending)  # metadata and content
    return status


def closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    """True if the server closes (or resets) the connection within `timeout`, sending nothing."""
    readable, _, _ = select.select([sock], [], [], timeout)
    if not readable:
        return False
    try:
        data = sock.recv(4096)
    except ConnectionResetError:
        return True  # closed with our bytes still unread: a reset, which is a close too
    assert data == b"", f"the server sent {data!r}"
    return True


def tcp(server: ServerProcess, timeout: float = 10.0) -> socket.socket:
    assert server.port is not None
    return socket.create_connection(("127.0.0.1", server.port), timeout=timeout)


def http_status(url: str, timeout: float = 10.0) -> int:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        response.read()
        return int(response.status)


async def connect(server: ServerProcess, app: str = "/demo") -> BokehClient:
    page = server.url(app)
    return await BokehClient.connect(ws_url(page), fetch_token(page))


async def closed_by_server(client: BokehClient) -> Closed:
    try:
        return await client.closed()
    finally:
        client.conn.close()


async def slider_round_trip(client: BokehClient, slider: str, value: int) -> None:
    msgid = await client.send(
        "PATCH-DOC",
        {"events": [{"kind": "ModelChanged", "model": {"id": slider}, "attr": "value", "new": value}]},
    )
    reply, _ = await client.reply_to(msgid)
    assert reply.msgtype == "OK", reply.content


# -- 1. --unix-socket with --allow-websocket-origin -------------------------------------------------


def test_unix_socket_applies_the_websocket_origin_allowlist(server_factory, tmp_path: Path) -> None:
    path = tmp_path / "ap.sock"
    server_factory(
        [f"{APPS}/demo.py"],
        ["--unix-socket", str(path), "--allow-websocket-origin", "app.example.com"],
        port=None,
        address=None,
    )

    def unix() -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(str(path))
        return sock

    with unix() as sock:
        sock.sendall(b"GET /demo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        match = TOKEN_RE.search(read_to_end(sock).decode())
        assert match, "no token in the page"
    token = match.group(1)
    with unix() as sock:
        assert open_raw_websocket(sock, "/demo/ws", token, origin="http://app.example.com") == 101
    with unix() as sock:
        assert open_raw_websocket(sock, "/demo/ws", token, origin="http://evil.example.com") == 403


# -- 2. a pending multi-buffer message is capped by --websocket-max-message-size --------------------


@pytest.fixture(scope="module")
def limited(module_server_factory) -> ServerProcess:
    return module_server_factory([f"{APPS}/demo.py"], ["--websocket-max-message-size", str(MAX_MESSAGE)])


async def test_buffers_that_add_up_past_the_limit_close_with_1009(limited: ServerProcess) -> None:
    mark = LogMark(limited)
    bystander = await connect(limited)
    slider = model_id((await bystander.pull()).content, "slider")
    client = await connect(limited)
    # Each frame is under the limit, the message they start is not; it never completes.
    frames: list[str | bytes] = [
        json.dumps({"msgid": "big", "msgtype": "PATCH-DOC", "num_buffers": 10}),
        "{}",
        '{"events": []}',
    ]
    for number in range(3):
        frames += [json.dumps({"id": f"b{number}"}), b"\0" * (MAX_MESSAGE // 2)]
    await client.send_frames(*frames)
    closed = await closed_by_server(client)
    assert closed.code == 1009, closed
    assert closed.reason is not None and closed.reason.startswith("message too big"), closed
    assert str(MAX_MESSAGE) in closed.reason
    mark.wait_for(r"Closing websocket of session .*: message too big")
    await slider_round_trip(bystander, slider, 4)  # the other session is unaffected
    await bystander.close()
    assert http_status(limited.url("/demo")) == 200


async def test_a_multi_buffer_message_under_the_limit_is_accepted(limited: ServerProcess) -> None:
    client = await connect(limited)
    buffers = {"b0": b"\0" * 5000, "b1": b"\1" * 5000}
    reply = await client.request("PATCH-DOC", {"events": []}, buffers=buffers)
    assert reply.msgtype == "OK", reply.content
    await client.close()


# -- 3. slow and idle request headers time out ------------------------------------------------------


def test_a_header_line_every_second_is_cut_off_by_the_header_timeout(server_factory) -> None:
    server = server_factory([f"{APPS}/demo.py"], ["--header-timeout", "2"])
    mark = LogMark(server)
    started = time.monotonic()
    closed_after: float | None = None
    with tcp(server) as sock:
        sock.sendall(b"GET /demo HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        for line in range(12):  # 12 s at most; the timeout is 2 s
            if closed_by_peer(sock, 1.0):
                closed_after = time.monotonic() - started
                break
            try:
                sock.sendall(f"X-Slow-{line}: 1\r\n".encode())
            except (BrokenPipeError, ConnectionResetError):
                closed_after = time.monotonic() - started
                break
    assert closed_after is not None, "the server kept a connection whose headers never ended"
    assert http_status(server.url("/healthz")) == 200
    assert "Traceback" not in mark.new()


def test_an_idle_connection_is_closed_and_later_requests_still_work(server_factory) -> None:
    server = server_factory([f"{APPS}/demo.py"], ["--header-timeout", "2"])
    with tcp(server) as sock:
        assert closed_by_peer(sock, 10.0), "an idle connection stayed open"
    assert http_status(server.url("/demo")) == 200


async def test_a_websocket_outlives_the_header_timeout(server_factory) -> None:
    server = server_factory([f"{APPS}/demo.py"], ["--header-timeout", "1", "--keep-alive", "0"])
    client = await connect(server)
    await asyncio.sleep(2.5)  # quiet for longer than the timeout: only the request head was bounded
    assert (await client.pull()).msgtype == "PULL-DOC-REPLY"
    await client.close()


def test_header_timeout_default_environment_and_errors() -> None:
    assert resolve({}, {}).header_timeout == 60
    assert resolve({}, {"APERTURE_HEADER_TIMEOUT": "7"}).header_timeout == 7
    assert resolve({"header_timeout": 3}, {"APERTURE_HEADER_TIMEOUT": "7"}).header_timeout == 3
    with pytest.raises(ConfigError, match="APERTURE_HEADER_TIMEOUT"):
        resolve({}, {"APERTURE_HEADER_TIMEOUT": "soon"})
    with pytest.raises(ConfigError, match="--header-timeout"):
        resolve({"header_timeout": 0}, {})


# -- 4. file-descriptor exhaustion: back off, log once, recover --------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


async def test_descriptor_exhaustion_backs_off_logs_once_and_recovers(server_factory) -> None:
    server = server_factory([f"{APPS}/demo.py"])
    bystander = await connect(server)  # a session opened before: it must keep working throughout
    await bystander.pull()  # (the first pull imports modules, which needs descriptors)
    in_use = len(os.listdir(f"/proc/{server.pid}/fd"))
    _, hard = resource.prlimit(server.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(server.pid, resource.RLIMIT_NOFILE, (in_use + 4, hard))
    clients = [tcp(server) for _ in range(30)]  # more than the server may open; the rest wait
    try:
        await asyncio.sleep(0.5)
        log_before, cpu_before = len(server.logs()), cpu_seconds(server.pid)
        await asyncio.sleep(2.5)
        grown, cpu = len(server.logs()) - log_before, cpu_seconds(server.pid) - cpu_before
        assert grown < 2000, (
            f"{grown} bytes of log in 2.5 s while out of descriptors:\n{server.logs()[-3000:]}"
        )
        assert cpu < 1.25, f"{cpu:.2f} s of CPU in 2.5 s while out of descriptors"
        assert len(re.findall("Cannot accept connections", server.logs())) == 1
        assert (await bystander.pull()).msgtype == "PULL-DOC-REPLY"
    finally:
        for sock in clients:
            sock.close()
    deadline = time.monotonic() + 20
    while True:  # the waiting connections are accepted (and found closed), then /healthz answers
        try:
            assert http_status(server.url("/healthz"), timeout=5) == 200
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    server.wait_for_log(r"Accepting connections on \S+ again")
    assert (await bystander.pull()).msgtype == "PULL-DOC-REPLY"
    await bystander.close()


# -- 5. --exclude-headers Cookie ------------------------------------------------------------------


async def info_of(client: BokehClient) -> dict:
    doc = (await client.pull()).content["doc"]
    [div] = [r for r in doc["roots"] if r["attributes"].get("name") == "info"]
    return json.loads(div["attributes"]["text"])


@pytest.mark.parametrize("spelling", ["Cookie", "cookie"])
async def test_exclude_headers_cookie_hides_the_cookie_header(server_factory, spelling: str) -> None:
    server = server_factory([f"{APPS}/context.py"], ["--exclude-headers", spelling])
    sent = {"Cookie": "theme=dark; sid=s3cret", "X-Custom": "kept"}
    page = server.url("/context")
    # a session built by the page request
    client = await BokehClient.connect(ws_url(page), fetch_token(page, headers=sent), headers=sent)
    from_page = await info_of(client)
    await client.close()
    # a session built by the websocket upgrade (a token for a session that does not exist yet)
    fresh = tokens.generate_token(generate_session_id())
    client = await BokehClient.connect(ws_url(page), fresh, headers=sent)
    from_upgrade = await info_of(client)
    await client.close()
    for info in (from_page, from_upgrade):
        assert "Cookie" not in info["headers"], info
        assert info["cookies"] == {}, info
        assert info["headers"]["X-Custom"] == "kept", info


async def test_without_exclusion_the_app_sees_cookies(server_factory) -> None:
    server = server_factory([f"{APPS}/context.py"], ["--exclude-cookies", "sid"])
    sent = {"Cookie": "theme=dark; sid=s3cret"}
    page = server.url("/context")
    client = await BokehClient.connect(ws_url(page), fetch_token(page, headers=sent), headers=sent)
    info = await info_of(client)
    await client.close()
    assert info["cookies"] == {"theme": "dark"}
    assert info["headers"]["Cookie"] == "theme=dark"  # rebuilt from the cookies that are kept


# -- 6. the WebSocket-layer warning only when a frame was refused ----------------------------------


async def test_normal_closes_log_no_websocket_layer_warning(limited: ServerProcess) -> None:
    mark = LogMark(limited)
    for _ in range(3):
        client = await connect(limited)
        await client.pull()
        await client.close()
    # a client that drops the TCP connection without a close frame is no protocol fault either
    token = fetch_token(limited.url("/demo"))
    with tcp(limited) as sock:
        assert open_raw_websocket(sock, "/demo/ws", token) == 101
    deadline = time.monotonic() + 10
    while mark.new().count("Websocket closed (peer code=") < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert mark.new().count("Websocket closed (peer code=") >= 4, mark.new()
    assert LAYER_WARNING not in mark.new()


async def test_an_oversized_frame_logs_the_websocket_layer_warning(limited: ServerProcess) -> None:
    mark = LogMark(limited)
    client = await connect(limited)
    await client.send_frames(json.dumps({"msgid": "x", "msgtype": "PULL-DOC-REQ"}), "x" * (MAX_MESSAGE + 1))
    closed = await closed_by_server(client)
    assert closed.code == 1009, closed
    mark.wait_for(
        rf"{LAYER_WARNING}: a message larger than --websocket-max-message-size \({MAX_MESSAGE} bytes\)"
    )


async def test_a_malformed_frame_logs_the_websocket_layer_warning(limited: ServerProcess) -> None:
    mark = LogMark(limited)
    token = fetch_token(limited.url("/demo"))
    with tcp(limited) as sock:
        assert open_raw_websocket(sock, "/demo/ws", token) == 101
        sock.sendall(client_frame(b"{}", first_byte=0xC1))  # RSV1 set, no extension negotiated
        assert closed_by_peer(sock, 10.0)  # dropped, as RFC 6455 allows
    mark.wait_for(rf"{LAYER_WARNING}: a frame that breaks RFC 6455")
    assert mark.new().count(LAYER_WARNING) == 1

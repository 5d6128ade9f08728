"""A small RFC 6455 client over asyncio streams, tuned for load generation.

One `write()` per outgoing Bokeh message (all its frames joined), large `read()`s fed to a
`FrameDecoder`, pings answered inline, TCP_NODELAY on. No compression, no TLS.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from collections import deque

from .frames import OP_CLOSE, OP_PING, OP_PONG, FrameDecoder, WSMessage, encode_close, encode_frame
from .http import open_tcp, parse_head

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class ConnectionClosed(Exception):
    def __init__(self, code: int | None = None, reason: str = "") -> None:
        super().__init__(f"websocket closed (code={code}, reason={reason!r})")
        self.code, self.reason = code, reason


class WSClient:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, protocol: str | None
    ) -> None:
        self._reader, self._writer = reader, writer
        self._decoder = FrameDecoder()
        self._queue: deque[WSMessage] = deque()
        self.protocol = protocol
        self.closed = False
        self.bytes_in = 0

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        path: str,
        protocols: list[str] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> WSClient:
        reader, writer = await open_tcp(host, port, timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if protocols:
            lines.append("Sec-WebSocket-Protocol: " + ", ".join(protocols))
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
            status, hdrs = parse_head(head[:-4])
            if status != 101:
                raise ConnectionError(f"websocket upgrade refused: HTTP {status}")
            accept = base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()
            if hdrs.get("sec-websocket-accept") != accept:
                raise ConnectionError("bad Sec-WebSocket-Accept")
        except BaseException:
            writer.close()
            raise
        return cls(reader, writer, hdrs.get("sec-websocket-protocol"))

    def send_frames(self, frames: list[tuple[int, bytes]]) -> None:
        """Queue several data frames as one write (one Bokeh message stays contiguous)."""
        if self.closed:
            raise ConnectionClosed(None, "send on closed socket")
        self._writer.write(b"".join(encode_frame(op, data) for op, data in frames))

    async def recv(self) -> WSMessage:
        """Next data message; answers pings; raises ConnectionClosed on a close frame or EOF."""
        while True:
            while self._queue:
                msg = self._queue.popleft()
                if msg.opcode == OP_PING:
                    self._writer.write(encode_frame(OP_PONG, msg.payload))
                elif msg.opcode == OP_PONG:
                    continue
                elif msg.opcode == OP_CLOSE:
                    if not self.closed:
                        self.closed = True
                        self._writer.write(encode_close(msg.close_code))
                    raise ConnectionClosed(msg.close_code, msg.payload[2:].decode("utf-8", "replace"))
                else:
                    return msg
            if self.closed:
                raise ConnectionClosed(None, "closed")
            data = await self._reader.read(1 << 18)
            if not data:
                self.closed = True
                raise ConnectionClosed(1006, "EOF")
            self.bytes_in += len(data)
            self._queue.extend(self._decoder.feed(data))

    async def close(self, code: int = 1000, timeout: float = 2.0) -> None:
        """Closing handshake (send close, wait briefly for the echo), then drop the TCP connection."""
        if not self.closed:
            self.closed = True
            try:
                self._writer.write(encode_close(code))
                await asyncio.wait_for(self._await_close_echo(), timeout)
            except (TimeoutError, OSError, ConnectionError):
                pass
        self._writer.close()
        try:
            await asyncio.wait_for(self._writer.wait_closed(), 1.0)
        except (TimeoutError, OSError):
            pass

    async def _await_close_echo(self) -> None:
        while True:
            if any(m.opcode == OP_CLOSE for m in self._queue):
                return
            self._queue.clear()
            data = await self._reader.read(1 << 18)
            if not data:
                return
            self._queue.extend(self._decoder.feed(data))

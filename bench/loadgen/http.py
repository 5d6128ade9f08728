"""Minimal HTTP/1.1 GET client over asyncio streams (keep-alive, Content-Length or chunked bodies).

Enough for app pages and static files; TCP_NODELAY is set on every connection. Every read is
bounded by `timeout`.
"""

from __future__ import annotations

import asyncio
import re
import socket
from dataclasses import dataclass

_TOKEN_RE = re.compile(r'"token"\s*:\s*"([A-Za-z0-9_.\-]+)"')
_SCRIPT_RE = re.compile(r'<script[^>]+src="([^"]+)"')


def extract_token(html: str) -> str:
    """The session token from an app page's render_items (tokens.md §3, endpoints.md §3)."""
    m = _TOKEN_RE.search(html)
    if not m:
        raise ValueError("no session token in page")
    return m.group(1)


def extract_script_urls(html: str) -> list[str]:
    return _SCRIPT_RE.findall(html)


def set_nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def open_tcp(host: str, port: int, timeout: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, limit=1 << 20), timeout)
    set_nodelay(writer)
    return reader, writer


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ValueError(f"bad status line {lines[0]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            k = k.strip().lower()
            headers[k] = f"{headers[k]}, {v.strip()}" if k in headers else v.strip()
    return int(parts[1]), headers


@dataclass(slots=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    wire_bytes: int

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class HTTPConnection:
    """One keep-alive connection; reconnects transparently when the server closed it."""

    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, path: str, headers: dict[str, str] | None = None) -> Response:
        hdrs = {"Host": f"{self.host}:{self.port}", "User-Agent": "aperture-bench", "Accept": "*/*"}
        hdrs.update(headers or {})
        req = (
            f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
        ).encode("latin-1")
        reused = self._writer is not None and not self._writer.is_closing()
        try:
            resp = await self._exchange(req)
        except (asyncio.IncompleteReadError, ConnectionError):
            if not reused:
                raise
            resp = await self._exchange(req)  # the server dropped an idle keep-alive connection: retry once
        if resp.headers.get("connection", "").lower() == "close":
            await self.close()
        return resp

    async def _exchange(self, req: bytes) -> Response:
        if self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await open_tcp(self.host, self.port, self.timeout)
        assert self._reader is not None
        self._writer.write(req)
        try:
            return await asyncio.wait_for(self._read_response(self._reader), self.timeout)
        except BaseException:
            await self.close()
            raise

    @staticmethod
    async def _read_response(reader: asyncio.StreamReader) -> Response:
        head = await reader.readuntil(b"\r\n\r\n")
        status, headers = parse_head(head[:-4])
        wire = len(head)
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
            wire += len(body)
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                line = await reader.readuntil(b"\r\n")
                size = int(line.split(b";")[0], 16)
                chunk = await reader.readexactly(size + 2)
                wire += len(line) + len(chunk)
                if size == 0:
                    break
                chunks.append(chunk[:-2])
            body = b"".join(chunks)
        elif status in (204, 304):
            body = b""
        else:
            body = await reader.read()
            wire += len(body)
        return Response(status, headers, body, wire)

    async def close(self) -> None:
        w, self._writer, self._reader = self._writer, None, None
        if w is not None:
            w.close()
            try:
                await asyncio.wait_for(w.wait_closed(), 1.0)
            except (TimeoutError, OSError):
                pass

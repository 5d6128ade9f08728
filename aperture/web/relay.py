"""Relaying a websocket to the process of this deployment that already runs its session.

Behind a load balancer without sticky sessions (or with `--num-procs`), a page's websocket may
land on a process other than the one that built its session. Instead of running the app a second
time, that process opens a websocket to the owner and copies frames both ways. The owner is a
`Destination` that `aperture.peers.Peers` checked: a sibling worker's private Unix socket, or
another instance's advertised `HOST:PORT` signed with the shared key. The URL is always this app's
own websocket path on that peer; nothing else from the token reaches it.

Authentication: the owner runs the auth module again on the relayed upgrade, which carries every
end-to-end header of the client's (all but hop-by-hop and handshake headers, and `Origin`, which
the first hop checked; `Host` included), so `get_user` sees what it saw at the first hop, whatever header it reads.
Relayed upgrades carry `X-Aperture-Relay` saying which hop they took; it only ever narrows what
the next process may do, so a client that sends it merely disables relaying for itself.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

from tornado.httpclient import HTTPRequest
from tornado.netutil import Resolver
from tornado.websocket import (
    WebSocketClientConnection,
    WebSocketClosedError,
    WebSocketHandler,
    websocket_connect,
)

from aperture.peers import HOP_INSTANCE, HOP_WORKER, Destination

log = logging.getLogger("aperture.relay")

RELAY_HEADER = "X-Aperture-Relay"
CONNECT_TIMEOUT = 3.0
WORKER_HOST = "worker.aperture.invalid"  # stands for the Unix socket in the URL; never resolved by DNS
NOT_FORWARDED = frozenset(
    name.lower()
    for name in (
        "Connection", "Upgrade", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization", "TE", "Trailer",
        "Transfer-Encoding", "Content-Length", "Origin", "Sec-WebSocket-Key", "Sec-WebSocket-Version",
        "Sec-WebSocket-Extensions", "Sec-WebSocket-Protocol", "Sec-WebSocket-Accept", RELAY_HEADER,
    )
)  # fmt: skip


class UnixSocketResolver(Resolver):
    """Resolves every name to one Unix socket path (the sibling worker's private socket)."""

    def initialize(self, path: str) -> None:  # type: ignore[override]
        self.path = path

    async def resolve(
        self, host: str, port: int, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> list[Any]:
        return [(socket.AF_UNIX, self.path)]


def client_tls() -> ssl.SSLContext:
    # Peers are this deployment's own processes, named by a hint only our key could sign.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def end_to_end_headers(headers: Any, left_out: frozenset[str] = NOT_FORWARDED) -> dict[str, str]:
    """The client's headers but those named in `left_out` (lower case), repeats joined: cookies
    with "; " as one Cookie header holds them, others with ", "."""
    kept: dict[str, list[str]] = {}
    for name, value in headers.get_all():
        if name.lower() not in left_out:
            kept.setdefault(name, []).append(value)
    return {name: ("; " if name.lower() == "cookie" else ", ").join(values) for name, values in kept.items()}


def websocket_path(prefix: str, route: str) -> str:
    return quote(prefix + ("" if route == "/" else route) + "/ws")


async def connect_owner(
    destination: Destination, downstream: WebSocketHandler, token: str, *, path: str, tls: bool
) -> WebSocketClientConnection | None:
    """An upstream websocket to the owner for the same app, or None if it cannot be reached."""
    request = downstream.request
    query = urlencode(
        [(k, v.decode("utf-8", "replace")) for k, vs in request.query_arguments.items() for v in vs]
    )
    suffix = path + (f"?{query}" if query else "")
    headers = end_to_end_headers(request.headers)
    request_id = getattr(downstream, "request_id", None)
    if request_id:  # the owner logs the websocket under the same id
        headers["X-Request-Id"] = request_id
    scheme = "wss" if tls else "ws"  # a worker's private socket speaks TLS too when the server does
    resolver: Resolver | None = None
    if destination.unix_socket is not None:
        url = f"{scheme}://{WORKER_HOST}{suffix}"
        resolver = UnixSocketResolver(path=destination.unix_socket)
        headers[RELAY_HEADER] = HOP_WORKER
    else:
        url = f"{scheme}://{destination.instance}{suffix}"
        headers[RELAY_HEADER] = HOP_INSTANCE
    http_request = HTTPRequest(
        url,
        headers=headers,
        connect_timeout=CONNECT_TIMEOUT,
        request_timeout=CONNECT_TIMEOUT,
        ssl_options=client_tls() if tls else None,
    )
    try:
        upstream = await websocket_connect(
            http_request,
            subprotocols=["bokeh", token],
            max_message_size=downstream.max_message_size,
            resolver=resolver,
        )
    except Exception as exc:  # refused, timed out, not a websocket
        log.info("Owner (%s) of a session is unreachable: %s", destination, exc)
        return None
    upstream.stream.set_nodelay(True)  # type: ignore[attr-defined]
    return upstream


def _close_code(code: int | None, default: int) -> int:
    return code if code and 1000 <= code < 5000 and code not in (1005, 1006) else default


def _nothing(*args: Any) -> None:
    pass


class Relay:
    """Copies frames between a client websocket and its owner's websocket; `on_sent(nbytes)` hears of
    each message written to the client, `on_failure()` of a relay broken by the owner's side."""

    def __init__(
        self,
        downstream: WebSocketHandler,
        upstream: WebSocketClientConnection,
        *,
        on_sent: Callable[[int], None] = _nothing,
        on_failure: Callable[[], None] = _nothing,
    ) -> None:
        self.downstream = downstream
        self.upstream = upstream
        self._on_sent = on_sent
        self._on_failure = on_failure
        self.task = asyncio.get_running_loop().create_task(self._pump())

    async def _pump(self) -> None:
        while True:
            message = await self.upstream.read_message()
            if message is None:
                self.downstream.close(_close_code(self.upstream.close_code, 1001), self.upstream.close_reason)
                return
            try:
                await self.downstream.write_message(message, binary=isinstance(message, bytes))
            except Exception:
                self.upstream.close()
                return
            self._on_sent(len(message))

    async def to_owner(self, message: Any) -> None:
        try:
            await self.upstream.write_message(message, binary=isinstance(message, bytes))
        except WebSocketClosedError:  # the owner went away: the client reconnects (to a survivor)
            self._on_failure()
            self.downstream.close(1001, "the session's owner went away")

    def close(self, code: int | None, reason: str | None) -> None:
        self.upstream.close(_close_code(code, 1000), reason)

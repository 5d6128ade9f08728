"""Relaying a websocket to the process that already runs its session.

Behind a load balancer without sticky sessions (or with `--num-procs`), a page's
websocket may land on a process other than the one that served the page and built
the session. Instead of running the app a second time, that process opens a
websocket to the owner (named in the token, see `aperture.core.owner_hint`) and
copies frames both ways. If the owner cannot be reached - it stopped or crashed -
the caller builds the session locally from the token, so the page recovers.
Relayed upgrades carry `X-Aperture-Relay: 1`; a process never relays those again.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, WebSocketHandler, websocket_connect

log = logging.getLogger("aperture.websocket")

RELAY_HEADER = "X-Aperture-Relay"
CONNECT_TIMEOUT = 3.0
FORWARDED_HEADERS = ("Cookie", "Authorization", "User-Agent", "X-Forwarded-For", "X-Real-Ip")


def _client_tls() -> ssl.SSLContext:
    # Peers are this deployment's own processes, named by a hint only our key could sign.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def connect_owner(
    owner: str, downstream: WebSocketHandler, token: str, *, tls: bool
) -> WebSocketClientConnection | None:
    """An upstream websocket to `owner` (host:port) for the same path, or None if unreachable."""
    request = downstream.request
    scheme = "wss" if tls else "ws"
    url = f"{scheme}://{owner}{request.path}" + (f"?{request.query}" if request.query else "")
    headers = {name: request.headers[name] for name in FORWARDED_HEADERS if name in request.headers}
    headers[RELAY_HEADER] = "1"
    http_request = HTTPRequest(
        url,
        headers=headers,
        connect_timeout=CONNECT_TIMEOUT,
        request_timeout=CONNECT_TIMEOUT,
        ssl_options=_client_tls() if tls else None,
    )
    try:
        upstream = await websocket_connect(
            http_request,
            subprotocols=["bokeh", token],
            max_message_size=downstream.max_message_size,
        )
    except Exception as exc:  # refused, timed out, not a websocket: recover locally
        log.info("Owner %s of a session is unreachable (%s); serving it here", owner, exc)
        return None
    upstream.stream.set_nodelay(True)  # type: ignore[attr-defined]
    return upstream


class Relay:
    """Copies frames between a client websocket and its owner's websocket."""

    def __init__(self, downstream: WebSocketHandler, upstream: WebSocketClientConnection) -> None:
        self.downstream = downstream
        self.upstream = upstream
        self.task = asyncio.get_running_loop().create_task(self._pump())

    async def _pump(self) -> None:
        while True:
            message = await self.upstream.read_message()
            if message is None:
                code, reason = self.upstream.close_code, self.upstream.close_reason
                self.downstream.close(code if code and 1000 <= code < 5000 and code != 1005 else 1001, reason)
                return
            try:
                await self.downstream.write_message(message, binary=isinstance(message, bytes))
            except Exception:
                self.upstream.close()
                return

    async def to_owner(self, message: Any) -> None:
        await self.upstream.write_message(message, binary=isinstance(message, bytes))

    def close(self, code: int | None, reason: str | None) -> None:
        self.upstream.close(code if code and 1000 <= code < 5000 and code != 1005 else 1000, reason)

"""`P A/ws`: the Bokeh websocket, and the keep-alive that watches every connection.

Opening checks the origin (403 before the upgrade), the `bokeh` subprotocol and the
session token (after the upgrade: a close with a 1008 code and a short reason), then
finds or creates the session. Tornado awaits `open` before it delivers messages, so
frames that arrive while a session is being created wait instead of failing.
Messages of one connection are handled strictly in order. With built-in sign-in, a websocket
served here is closed with 1008 once its sign-in ends and can no longer be refreshed
(`SIGN_IN_EXPIRED`; see `oidc_watch`); a relayed one is watched by the process it is relayed to.

The server's observer hears of each websocket (`websocket_opened`, and `websocket_closed` with the
messages and bytes counted both ways, also for one refused after the upgrade), of the bytes sent,
and of errors by kind: "origin", "auth", "bad_token", "bad_message", "bad_frame", "relay".
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any

from tornado import websocket
from tornado.ioloop import IOLoop, PeriodicCallback
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketProtocol

from aperture.core import ServerCore
from aperture.dispatch import Connection
from aperture.errors import (
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL_ERROR,
    CLOSE_POLICY_VIOLATION,
    AppFailedError,
    PeerError,
    SessionError,
    TokenError,
)
from aperture.operations.observer import WebsocketEnd
from aperture.peers import Destination
from aperture.security.origins import websocket_origin_allowed
from aperture.security.tokens import VerifiedToken
from aperture.web.relay import RELAY_HEADER, Relay, connect_owner, websocket_path
from aperture.web.requests import AuthMixin, incoming
from aperture.web.wsprotocol import TOO_BIG, watched

log = logging.getLogger("aperture.websocket")

SIGN_IN_EXPIRED = "sign-in expired; reload the page to sign in again"


class KeepAlive:
    """Pings every open connection; closes those that stopped answering."""

    def __init__(self, interval_ms: int) -> None:
        self.interval_ms = interval_ms
        self.sockets: set[BokehWebSocket] = set()
        self._timer: PeriodicCallback | None = None

    def start(self) -> None:
        if self.interval_ms > 0 and self._timer is None:
            self._timer = PeriodicCallback(self._tick, self.interval_ms)
            self._timer.start()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    def _tick(self) -> None:
        deadline = time.monotonic() - 3 * self.interval_ms / 1000
        for sock in list(self.sockets):
            if sock.last_seen < deadline:
                log.info("Closing a websocket that stopped answering pings")
                sock.close(CLOSE_GOING_AWAY, "no answer to pings")
                continue
            sock.send_ping()


class BokehWebSocket(AuthMixin, websocket.WebSocketHandler):
    """One browser tab or `bokeh.client` connection."""

    def initialize(self, core: ServerCore, route: str, keepalive: KeepAlive) -> None:
        self.core = core
        self.route = route
        self.keepalive = keepalive
        self.connection: Connection | None = None
        self.relay: Relay | None = None
        self._we_closed = False
        self._outbox: list[bytes] = []
        self.token: str | None = None
        self.last_seen = time.monotonic()
        self._pings = 0
        self._started = time.monotonic()
        self._session_id = ""  # set once the websocket was reported open (served here or relayed)
        self._sent_close: tuple[int | None, str | None] = (None, None)
        self._stop_watching: Callable[[], None] | None = None  # the sign-in watch, if any
        self.messages_in = self.messages_out = self.bytes_in = self.bytes_out = 0

    def set_default_headers(self) -> None:
        self.set_header("Server", "Aperture")

    def check_origin(self, origin: str) -> bool:
        allowlist = self.settings["aperture_origins"]
        allowed = websocket_origin_allowed(
            origin=origin,
            host=self.request.headers.get("Host"),
            sec_fetch_site=self.request.headers.get("Sec-Fetch-Site"),
            allowlist=allowlist,
        )
        if not allowed:
            self.core.observer.error("origin")
            log.warning(
                "Refusing websocket connection from Origin %r; use --allow-websocket-origin=<host> or "
                "BOKEH_ALLOW_WS_ORIGIN=<host> to permit it (allowed now: %s)",
                origin,
                ", ".join(allowlist) or "none",
            )
        return allowed

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        if len(subprotocols) == 2 and subprotocols[0] == "bokeh":
            self.token = subprotocols[1]
            return "bokeh"
        return None

    def get_compression_options(self) -> dict[str, Any] | None:
        level = self.settings.get("aperture_compression_level")
        if level is None:
            return None
        options: dict[str, Any] = {"compression_level": level}
        mem_level = self.settings.get("aperture_compression_mem_level")
        if mem_level is not None:
            options["mem_level"] = mem_level
        return options

    async def open(self, *args: Any) -> None:
        self.set_nodelay(True)
        observer = self.core.observer
        if not self.authenticated():
            observer.error("auth")
            self._refuse(CLOSE_POLICY_VIOLATION, "authentication required")
            return
        if self.token is None:
            observer.error("bad_token")
            self._refuse(CLOSE_POLICY_VIOLATION, "expected the subprotocols 'bokeh' and a session token")
            return
        try:
            verified = self.core.verify_token(self.token)
            await self.core.until_started()
            plan = await self.core.plan_websocket(
                self.route, verified, self.request.headers.get(RELAY_HEADER)
            )
            if plan.destination is not None and await self._relay_to_owner(verified, plan.destination):
                return
            session = await self.core.session_for_websocket(
                self.route, verified, self.token, incoming(self.request), plan
            )
        except PeerError as exc:
            if isinstance(exc, TokenError):
                observer.error("bad_token")
            self._refuse(exc.close_code, exc.reason)
            return
        except AppFailedError as exc:  # counted by the registry as a failed build
            log.warning("Websocket for app %s refused: the app failed: %s", self.route, exc.summary)
            self._refuse(CLOSE_INTERNAL_ERROR, "the application failed to build this session")
            return
        except SessionError as exc:
            self._refuse(CLOSE_GOING_AWAY if self.core.draining else CLOSE_POLICY_VIOLATION, str(exc))
            return
        if self.ws_connection is None:  # the client left while the session was being made
            return
        self.connection = Connection(
            session, self._write_frames, self.core.ids, self.core.config.websocket_max_message_size
        )
        self._session_id = session.id
        observer.websocket_opened(self.route, False)
        self.connection.open()
        self.keepalive.sockets.add(self)
        if self.auth.watch_websocket is not None:
            self._stop_watching = self.auth.watch_websocket(self)
        log.info("Websocket opened for session %r of %s", session.id[:12], self.route)

    def sign_in_expired(self) -> None:
        """The sign-in this websocket was opened with has ended and cannot be refreshed."""
        self.close(CLOSE_POLICY_VIOLATION, SIGN_IN_EXPIRED)

    async def _relay_to_owner(self, verified: VerifiedToken, destination: Destination) -> bool:
        """Hand the connection to the process of this deployment that owns its session.

        If the owner cannot be reached, the session is built here - taken over from the session
        store when it has the session; without a store, an expired token is then refused: only the
        owner could vouch that the session it names exists and was opened while the token was valid.
        """
        if self.token is None:
            return False
        cfg = self.core.config
        path = websocket_path(cfg.prefix, self.route)
        upstream = await connect_owner(destination, self, self.token, path=path, tls=bool(cfg.ssl_certfile))
        if upstream is None:
            self.core.observer.error("relay")
            if self.core.keeper is None:
                if verified.expired:
                    raise TokenError("token has expired")
                log.info("Building session %r here: its owner is unreachable", verified.session_id[:12])
            return False
        if self.ws_connection is None:  # the client left meanwhile
            upstream.close()
            return True
        self.relay = Relay(self, upstream, on_sent=self._relayed_out, on_failure=self._relay_failed)
        self._session_id = verified.session_id
        self.core.observer.websocket_opened(self.route, True)
        self.keepalive.sockets.add(self)
        log.info("Websocket for session %r relayed to its owner (%s)", verified.session_id[:12], destination)
        return True

    def _refuse(self, code: int, reason: str) -> None:
        log.info("Websocket for %s refused: %s", self.route, reason)
        self.close(code, reason)

    async def on_message(self, message: str | bytes) -> None:
        self.last_seen = time.monotonic()
        self.messages_in += 1
        self.bytes_in += len(message)
        if self._we_closed:  # frames still arriving after we closed (the rest of a refused message)
            return
        if self.relay is not None:
            await self.relay.to_owner(message)
            return
        if self.connection is None:
            return
        try:
            await self.connection.receive(message)
        except PeerError as exc:
            self.core.observer.error("bad_message")
            log.warning("Closing websocket of session %r: %s", self.connection.session.id[:12], exc.reason)
            self.close(exc.close_code, exc.reason)

    def on_pong(self, data: bytes) -> None:
        self.last_seen = time.monotonic()

    def send_ping(self) -> None:
        try:
            self.ping(str(self._pings).encode("ascii"))
            self._pings += 1
        except websocket.WebSocketClosedError:
            self.keepalive.sockets.discard(self)

    def get_websocket_protocol(self) -> WebSocketProtocol | None:
        return watched(super().get_websocket_protocol())

    def on_connection_close(self) -> None:
        # Only when Tornado's protocol itself refused a frame: a normal close is no news.
        fault = getattr(self.ws_connection, "fault", None)
        if fault is not None and not self._we_closed:
            self.core.observer.error("bad_frame")
            if fault == TOO_BIG:
                fault += f" ({self.settings.get('websocket_max_message_size')} bytes)"
            log.warning("Websocket closed by the WebSocket layer: %s", fault)
        super().on_connection_close()

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        if not self._we_closed:
            self._sent_close = (code, reason)
        self._we_closed = True
        super().close(code, reason)

    def on_close(self) -> None:
        self.keepalive.sockets.discard(self)
        if self._stop_watching is not None:
            self._stop_watching()
            self._stop_watching = None
        self._report_end()
        if self.relay is not None:
            self.relay.close(self.close_code, self.close_reason)
        if self.connection is not None:
            log.info("Websocket closed (peer code=%s, reason=%r)", self.close_code, self.close_reason)
            self.connection.close()
            self.connection = None  # this handler lingers in Tornado's cycles: don't keep the session

    def _report_end(self) -> None:
        # Who closed first says which code tells the story: ours, or the peer's (None: it vanished).
        code, reason = self._sent_close if self._we_closed else (self.close_code, self.close_reason)
        self.core.observer.websocket_closed(
            WebsocketEnd(
                app=self.route,
                session_id=self._session_id,
                client=self.request.remote_ip or "",
                request_id=str(getattr(self, "request_id", "")),
                seconds=time.monotonic() - self._started,
                code=code,
                reason=reason or "",
                messages_in=self.messages_in,
                messages_out=self.messages_out,
                bytes_in=self.bytes_in,
                bytes_out=self.bytes_out,
                relayed=self.relay is not None,
            )
        )

    def _relayed_out(self, nbytes: int) -> None:
        self.messages_out += 1
        self.bytes_out += nbytes
        self.core.observer.bytes_sent(self.route, nbytes)

    def _relay_failed(self) -> None:
        self.core.observer.error("relay")

    def _write_frames(self, frames: Sequence[str | bytes]) -> None:
        """Queue one Bokeh message; everything queued in one loop turn goes out in one write.

        A Bokeh message is 3 or more WebSocket frames and a reply often follows its patches,
        so writing frame by frame costs a syscall (and a task) per frame. Without
        compression, frames are built here (server frames are unmasked, RFC 6455 §5.2) and
        flushed together; with compression Tornado's per-message path is used.
        """
        if self.ws_connection is None or self.ws_connection.is_closing():
            return
        self.messages_out += 1
        if self.settings.get("aperture_compression_level") is not None:
            nbytes = sum(len(frame) for frame in frames)  # before compression
            self.bytes_out += nbytes
            self.core.observer.bytes_sent(self.route, nbytes)
            try:
                for frame in frames:
                    self.write_message(frame, binary=isinstance(frame, bytes)).add_done_callback(_consume)
            except websocket.WebSocketClosedError:
                log.debug("Dropped a message for a websocket that is already closed")
            return
        if not self._outbox:
            IOLoop.current().add_callback(self._flush)
        self._outbox.extend(websocket_frame(frame) for frame in frames)

    def _flush(self) -> None:
        data, self._outbox = b"".join(self._outbox), []
        connection = self.ws_connection
        if connection is None or connection.is_closing() or not data:
            return
        self.bytes_out += len(data)
        self.core.observer.bytes_sent(self.route, len(data))
        try:
            connection.stream.write(data).add_done_callback(_consume)  # type: ignore[attr-defined,union-attr]
        except StreamClosedError:
            log.debug("Dropped a message for a websocket that is already closed")


def websocket_frame(payload: str | bytes) -> bytes:
    """One final, unmasked WebSocket frame: text for str, binary for bytes."""
    if isinstance(payload, str):
        data, first = payload.encode("utf-8"), 0x81
    else:
        data, first = bytes(payload), 0x82
    size = len(data)
    if size < 126:
        header = struct.pack("!BB", first, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", first, 126, size)
    else:
        header = struct.pack("!BBQ", first, 127, size)
    return header + data


def _consume(future: Any) -> None:
    # A write that fails because the peer left is expected; the close handler cleans up.
    if not future.cancelled():
        future.exception()

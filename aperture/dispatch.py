"""One websocket connection to a session: protocol messages in, session actions, replies out.

`Connection` is framework-neutral: the web layer feeds it frames in arrival order
(awaiting each `receive`) and gives it a `send` function that queues frames on the
socket. Protocol violations raise `ProtocolViolation` for the web layer to turn
into a close; a request the session cannot carry out (a bad patch, an unknown
model) gets an ERROR reply with a short text and the connection stays open; so does
one whose app code raised, `sys.exit()` included (the session turns that into an
`AppExit`).

Each message is timed from its arrival until its reply is queued and reported through the
session's `SessionWatch` (metrics, slow-message warnings); log lines made while it is handled
carry the app and session.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from time import perf_counter

import bokeh

from aperture import __version__
from aperture.apps.guard import AppExit
from aperture.operations import log_context
from aperture.protocol import (
    CLIENT_REQUESTS,
    Message,
    MessageAssembler,
    MessageIds,
    ack,
    encode,
    error,
    ok,
    pull_doc_reply,
    server_info_reply,
)
from aperture.sessions.session import Session

log = logging.getLogger("aperture.websocket")

MAX_ERROR_TEXT = 300
LOCKED_REQUESTS = frozenset(("PULL-DOC-REQ", "PATCH-DOC", "PUSH-DOC"))  # handled under the session lock


class RequestFailed(Exception):
    """A client request that is well-formed but cannot be carried out."""


def _short(exc: BaseException) -> str:
    if isinstance(exc, AppExit):
        text = str(exc)  # already names what the app raised
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text if len(text) <= MAX_ERROR_TEXT else text[: MAX_ERROR_TEXT - 3] + "..."


class Connection:
    """A subscriber of one session, speaking the Bokeh protocol."""

    def __init__(
        self,
        session: Session,
        send: Callable[[Sequence[str | bytes]], None],
        ids: MessageIds,
        max_message_bytes: int | None = None,
    ) -> None:
        self.session = session
        self._send = send
        self._ids = ids
        # --websocket-max-message-size bounds each frame (Tornado) and each whole message (here).
        self._assembler = MessageAssembler(accept=CLIENT_REQUESTS, max_bytes=max_message_bytes)
        self.closed = False

    def send_frames(self, frames: Sequence[str | bytes]) -> None:
        if not self.closed:
            self._send(frames)

    def open(self) -> None:
        """Subscribe to the session and say ACK."""
        self.session.subscribe(self)
        self.send_frames(encode(ack(self._ids())))

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.session.unsubscribe(self)
        if not self.session.destroyed:
            try:
                self.session.notify_connection_lost()
            except Exception:
                log.exception("Error in a ConnectionLost callback of %s", self.session.label)

    async def receive(self, frame: str | bytes) -> None:
        """Feed one websocket frame; handles the message it completes, if any."""
        message = self._assembler.feed(frame)
        if message is not None:
            await self.handle(message)

    async def handle(self, message: Message) -> None:
        session = self.session
        start = perf_counter()
        session.touch()
        fields = log_context.bind(app=session.app, session=session.id)
        failure = ""
        try:
            try:
                reply = await self._answer(message)
            except Exception as exc:
                failure = "bad_request" if isinstance(exc, RequestFailed) else "message"
                log.warning("%s: %s failed: %s", session.label, message.msgtype, _short(exc))
                if isinstance(exc, AppExit):  # the operator must learn that the app tried to stop
                    log.error("Traceback of the failed %s", message.msgtype, exc_info=True)
                elif not isinstance(exc, RequestFailed):
                    log.debug("Traceback of the failed %s", message.msgtype, exc_info=True)
                reply = error(self._ids(), message.msgid, _short(exc))
            frames = encode(reply)
            self.send_frames(frames)
            seconds = perf_counter() - start
            # Slow or not is judged on the time it held the session (not on a wait for another's work).
            work = session.held_seconds if message.msgtype in LOCKED_REQUESTS else seconds
            watch = session.watch
            watch.message_handled(session.app, session.id, message.msgtype, seconds, work)
            if failure:
                watch.observer.error(failure)
            elif message.msgtype == "PULL-DOC-REQ":
                watch.observer.document_pulled(session.app, seconds, sum(len(frame) for frame in frames))
        finally:
            log_context.reset(fields)

    async def _answer(self, message: Message) -> Message:
        kind, content = message.msgtype, message.content
        if kind == "PULL-DOC-REQ":
            doc, buffers = await self.session.pull()
            return pull_doc_reply(self._ids(), message.msgid, doc, buffers)
        if kind == "SERVER-INFO-REQ":
            return server_info_reply(self._ids(), message.msgid, bokeh.__version__, __version__)
        if kind == "PATCH-DOC":
            if not isinstance(content.get("events"), list):
                raise RequestFailed("PATCH-DOC content needs an 'events' list")
            await self.session.patch(content, message.buffers, origin=self)
        elif kind == "PUSH-DOC":
            if not isinstance(content.get("doc"), dict):
                raise RequestFailed("PUSH-DOC content needs a 'doc' object")
            await self.session.push(content["doc"], message.buffers)
        return ok(self._ids(), message.msgid)

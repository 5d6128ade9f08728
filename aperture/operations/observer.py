"""The seam through which the server reports what operators may want to know.

The server calls these hooks at fixed points (a session made or destroyed, a message handled, a
callback run, a websocket closed, an HTTP request finished, a view refused...). `Observer` does
nothing; metrics, access logs and the admin view subclass it and override what they need.
`Observers` passes every call to each observer it holds; the core owns one (`core.observer`), so
a feature plugs in with `core.observer.add(...)` before the server starts.

Hooks run on the event loop unless their docstring says otherwise, must be cheap, and must not
raise: a failing observer is logged once and the server goes on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("aperture.server")


@dataclass(frozen=True)
class WebsocketEnd:
    """A websocket connection that just closed, as the access log and the metrics see it."""

    app: str
    session_id: str  # "" when it closed before a session was found (bad token, origin, ...)
    client: str  # the peer address (X-Real-Ip / X-Forwarded-For with --use-xheaders)
    request_id: str
    seconds: float  # open for
    code: int | None  # close code, when known
    reason: str
    messages_in: int
    messages_out: int
    bytes_in: int
    bytes_out: int
    relayed: bool  # served by relaying to the instance or worker that owns the session


class Observer:
    """Every hook the server calls; each does nothing here."""

    def server_started(self, core: Any) -> None:
        """The apps are loaded and the process serves (start periodic samplers here)."""

    def server_stopping(self) -> None:
        """Shutdown began (stop periodic work here)."""

    def session_created(self, app: str, seconds: float) -> None:
        """A session's document was built (`seconds`: the build, hooks included)."""

    def session_build_failed(self, app: str) -> None:
        """An app raised while building a session's document (the page got a 500)."""

    def session_destroyed(self, app: str) -> None:
        """A session was discarded (unused, shut down, or moved to another process)."""

    def document_pulled(self, app: str, seconds: float, nbytes: int) -> None:
        """A PULL-DOC was answered: the whole document serialized and sent."""

    def message_handled(self, app: str, msgtype: str, seconds: float) -> None:
        """A client message was handled, from its arrival to its reply being queued."""

    def callback_ran(self, app: str, session_id: str, kind: str, seconds: float) -> None:
        """An app callback (`kind`: "periodic", "timeout", "next_tick", "event") returned or raised.
        May be called from a callback thread."""

    def slow_callback(self, app: str, session_id: str, what: str, seconds: float) -> None:
        """Something took longer than `--slow-callback-ms` (already logged as a warning)."""

    def websocket_opened(self, app: str, relayed: bool) -> None:
        """A websocket was accepted (and, with `relayed`, connected through to its owner)."""

    def websocket_closed(self, end: WebsocketEnd) -> None:
        """A websocket that `websocket_opened` reported, or one refused while opening, closed."""

    def bytes_sent(self, app: str, nbytes: int) -> None:
        """Websocket payload bytes written to clients."""

    def request_finished(self, handler: Any) -> None:
        """A Tornado HTTP request (or websocket upgrade) finished; Tornado's `log_function`."""

    def error(self, kind: str) -> None:
        """Something went wrong that an operator counts: "bad_message", "bad_token", "origin",
        "callback", "relay", "store", "hook", ... (see docs/operations.md for the list)."""

    def admission_refused(self, app: str, scope: str) -> None:
        """A new session was refused because the process (`scope` "process") or the app ("app")
        holds as many sessions as allowed."""


class Observers(Observer):
    """Passes every hook to each observer added, in order."""

    def __init__(self) -> None:
        self._observers: list[Observer] = []
        self._failed: set[tuple[int, str]] = set()

    def add(self, observer: Observer) -> None:
        self._observers.append(observer)

    def __iter__(self) -> Any:
        return iter(self._observers)

    def __bool__(self) -> bool:
        return bool(self._observers)

    def _each(self, hook: str, *args: Any) -> None:
        for observer in self._observers:
            try:
                getattr(observer, hook)(*args)
            except Exception:
                if (id(observer), hook) not in self._failed:  # once: hooks run on hot paths
                    self._failed.add((id(observer), hook))
                    log.exception("Observer %s failed in %s", type(observer).__name__, hook)

    def server_started(self, core: Any) -> None:
        self._each("server_started", core)

    def server_stopping(self) -> None:
        self._each("server_stopping")

    def session_created(self, app: str, seconds: float) -> None:
        self._each("session_created", app, seconds)

    def session_build_failed(self, app: str) -> None:
        self._each("session_build_failed", app)

    def session_destroyed(self, app: str) -> None:
        self._each("session_destroyed", app)

    def document_pulled(self, app: str, seconds: float, nbytes: int) -> None:
        self._each("document_pulled", app, seconds, nbytes)

    def message_handled(self, app: str, msgtype: str, seconds: float) -> None:
        self._each("message_handled", app, msgtype, seconds)

    def callback_ran(self, app: str, session_id: str, kind: str, seconds: float) -> None:
        self._each("callback_ran", app, session_id, kind, seconds)

    def slow_callback(self, app: str, session_id: str, what: str, seconds: float) -> None:
        self._each("slow_callback", app, session_id, what, seconds)

    def websocket_opened(self, app: str, relayed: bool) -> None:
        self._each("websocket_opened", app, relayed)

    def websocket_closed(self, end: WebsocketEnd) -> None:
        self._each("websocket_closed", end)

    def bytes_sent(self, app: str, nbytes: int) -> None:
        self._each("bytes_sent", app, nbytes)

    def request_finished(self, handler: Any) -> None:
        self._each("request_finished", handler)

    def error(self, kind: str) -> None:
        self._each("error", kind)

    def admission_refused(self, app: str, scope: str) -> None:
        self._each("admission_refused", app, scope)

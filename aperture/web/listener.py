"""`PacedListener`: accepting connections without spinning when descriptors run out, and fairly
between worker processes.

Tornado's accept handler lets an `OSError` from `accept()` escape. At EMFILE or ENFILE the
listening socket stays readable, so the event loop calls the handler again at once: a spinning
CPU and a traceback per attempt (tens of megabytes of log a second). Handed to `HTTPServer`
instead of the bare socket, a `PacedListener` turns such a shortage into a pause: the socket is
not watched for a while (doubling from `FIRST_PAUSE` to `MAX_PAUSE` while the shortage lasts),
one warning is logged per `LOG_INTERVAL`, and accepting resumes by itself, with one line saying
so, once a descriptor is free. Connections that arrive meanwhile wait in the kernel's backlog.
Errors that concern only the connection being accepted (Linux reports some network errors of
the new connection from `accept`) skip that connection, as Tornado does for ECONNABORTED.

A socket shared by `--num-procs` workers (`shared_listener`) spreads connections over them.
Tornado's handler accepts up to 128 connections per readiness event, so the worker woken first
took every connection waiting in the backlog, and with keep-alive clients (browsers, proxies)
one worker could end up holding all of them while the others idled. A shared listener accepts
one connection per turn of the event loop (a worker busy running an app has long turns and
takes fewer), and a worker holding clearly more connections than a live sibling (`over_share`,
see `aperture.worker_loads`) stops watching the socket for `DEFER` seconds at a time, so the
sibling takes the connection; if none did within `DEFER_LIMIT`, it accepts the connection itself.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any, cast

from tornado.ioloop import IOLoop

from aperture.worker_loads import DEFER, DEFER_LIMIT

log = logging.getLogger("aperture.server")

FIRST_PAUSE = 0.05  # seconds
MAX_PAUSE = 1.0
LOG_INTERVAL = 10.0

# Out of descriptors or kernel memory: retrying at once cannot help.
_SHORTAGES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# accept(2) on Linux: "should be treated like EAGAIN by retrying" -- they belong to one connection.
_ONE_CONNECTION = frozenset(
    getattr(errno, name)
    for name in ("ENETDOWN", "EPROTO", "ENOPROTOOPT", "EHOSTDOWN", "ENONET", "EHOSTUNREACH", "ENETUNREACH")
    if hasattr(errno, name)
)


class PacedListener:
    """Wraps a listening socket for `HTTPServer.add_sockets`; see the module docstring."""

    def __init__(
        self,
        sock: socket.socket,
        clock: Callable[[], float] = time.monotonic,
        *,
        over_share: Callable[[], bool] | None = None,
    ) -> None:
        self._sock = sock
        self._over_share = over_share  # set for a socket shared with sibling workers
        self._turn_taken = False  # shared: a connection was accepted in this loop turn
        self._deferring_since: float | None = None  # shared: the waiting connection is left to a sibling
        self._clock = clock
        self._name = _describe(sock)
        self._pause = FIRST_PAUSE
        self._resume_timer: object | None = None
        self._short_since: float | None = None
        self._last_warning: float | None = None
        self._refused = 0  # attempts refused since the last warning
        self._closed = False

    def fileno(self) -> int:
        return self._sock.fileno()

    def accept(self) -> tuple[socket.socket, Any]:
        if self._turn_taken:
            # Tornado's handler stops its accept loop quietly on BlockingIOError; the socket stays
            # readable, so the next turn (or a sibling worker) takes the next connection.
            raise BlockingIOError(errno.EAGAIN, "one connection per loop turn")
        if self._over_share is not None and self._over_share():
            now = self._clock()
            if self._deferring_since is None:
                self._deferring_since = now
            if now - self._deferring_since < DEFER_LIMIT:
                self._pause_watching(DEFER)
                raise BlockingIOError(errno.EAGAIN, "left to a less loaded worker")
        try:
            connection, address = self._sock.accept()
        except OSError as exc:
            if exc.errno in _SHORTAGES:
                self._back_off(exc)
                # Tornado's handler stops its accept loop quietly on BlockingIOError.
                raise BlockingIOError(errno.EAGAIN, "accepting paused") from None
            if exc.errno in _ONE_CONNECTION:
                raise ConnectionAbortedError(exc.errno, exc.strerror) from None
            raise
        if self._short_since is not None:
            self._recovered()
        if self._over_share is not None:
            self._deferring_since = None
            self._turn_taken = True
            IOLoop.current().add_callback(self._next_turn)
        return connection, address

    def _next_turn(self) -> None:
        self._turn_taken = False

    def close(self) -> None:
        self._closed = True
        if self._resume_timer is not None:
            IOLoop.current().remove_timeout(self._resume_timer)
            self._resume_timer = None
        self._sock.close()

    def __getattr__(self, name: str) -> Any:
        # Anything else Tornado may ask of a listening socket (getsockname, family, ...).
        return getattr(self._sock, name)

    def _back_off(self, exc: OSError) -> None:
        now = self._clock()
        if self._short_since is None:
            self._short_since = now
        self._refused += 1
        if self._last_warning is None or now - self._last_warning >= LOG_INTERVAL:
            log.warning(
                "Cannot accept connections on %s: %s (%s); %d attempt(s) refused, new connections wait "
                "until a descriptor is free. If this recurs, raise the limit (ulimit -n, systemd "
                "LimitNOFILE=) or lower the load",
                self._name,
                exc.strerror or os.strerror(exc.errno or 0),
                errno.errorcode.get(exc.errno or 0, exc.errno),
                self._refused,
            )
            self._last_warning = now
            self._refused = 0
        self._pause_watching(self._pause)
        self._pause = min(self._pause * 2, MAX_PAUSE)

    def _pause_watching(self, seconds: float) -> None:
        loop = IOLoop.current()
        loop.update_handler(self.fileno(), 0)  # stop watching the socket: it would stay readable
        self._resume_timer = loop.call_later(seconds, self._resume)

    def _resume(self) -> None:
        self._resume_timer = None
        if not self._closed:
            IOLoop.current().update_handler(self.fileno(), IOLoop.READ)

    def _recovered(self) -> None:
        assert self._short_since is not None
        log.info(
            "Accepting connections on %s again, after %.1f s without free file descriptors",
            self._name,
            self._clock() - self._short_since,
        )
        self._short_since = None
        self._last_warning = None
        self._refused = 0
        self._pause = FIRST_PAUSE


def paced(sockets: Iterable[socket.socket]) -> list[socket.socket]:
    """The sockets wrapped for `HTTPServer.add_sockets`, which needs only fileno, accept and close."""
    return [cast(socket.socket, PacedListener(sock)) for sock in sockets]


def shared_listener(sock: socket.socket, over_share: Callable[[], bool]) -> socket.socket:
    """`sock`, shared with sibling workers, wrapped to spread connections over them; `over_share()`
    tells whether this worker holds clearly more connections than a sibling."""
    return cast(socket.socket, PacedListener(sock, over_share=over_share))


def _describe(sock: socket.socket) -> str:
    try:
        name = sock.getsockname()
    except OSError:
        return "a listening socket"
    if isinstance(name, tuple):
        return f"{name[0]}:{name[1]}"
    return str(name) or "a Unix socket"

"""Admission control: how many sessions a process may hold (`--max-sessions`, `--max-sessions-per-app`).

What counts is every session the process holds in memory: live sessions, connected or not (a session
whose page closed stays until `--unused-session-lifetime` has passed and the next unused-session
check reaps it), copies made for pages whose session another process owns, and sessions being
built. A new session past a limit is refused with `SessionLimitReached`; a request or websocket for a
session the process already holds, one being built, or one taken over from the session store is
never refused - those are existing users.

With `--num-procs`, each worker publishes its count on the shared board (`WorkerLoads`), so a worker
that must refuse a page view can hand it to a sibling with room (`aperture.web.forward`), and
`/readyz` reports "full" only while no live worker has room. Refusals are reported to the observers
(metrics) and logged, at most one line per `LOG_INTERVAL` seconds.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from aperture.config import Config
from aperture.errors import SessionLimitReached
from aperture.operations.observer import Observer

if TYPE_CHECKING:
    from aperture.peers import WorkerGroup
    from aperture.sessions.registry import SessionRegistry

log = logging.getLogger("aperture.server")

LOG_INTERVAL = 10.0
"""Seconds between two log lines about refused sessions (the refusals in between are counted)."""
RETRY_AFTER_MAX = 60
"""Most seconds a refusal's Retry-After asks a client to wait."""

PROCESS = "process"
APP = "app"


class RefusalLog:
    """Logs refusals concisely: the first at once, then at most one line per interval with a count."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, interval: float = LOG_INTERVAL) -> None:
        self._clock = clock
        self._interval = interval
        self._last: float | None = None
        self._unlogged = 0

    def refused(self, refusal: SessionLimitReached, held: int) -> bool:
        """Note one refusal; returns True if it was logged."""
        now = self._clock()
        if self._last is not None and now - self._last < self._interval:
            self._unlogged += 1
            return False
        flag = "--max-sessions" if refusal.scope == PROCESS else "--max-sessions-per-app"
        where = "this process" if refusal.scope == PROCESS else f"app {refusal.app} in this process"
        more = f" ({self._unlogged} more refused since the last report)" if self._unlogged else ""
        log.warning(
            "Refused a new session of %s: %s is at %s %d (%d held)%s",
            refusal.app,
            where,
            flag,
            refusal.limit,
            held,
            more,
        )
        self._last = now
        self._unlogged = 0
        return True


class Admission:
    """The session limits of one process, and the bookkeeping behind them."""

    def __init__(
        self,
        config: Config,
        apps: Mapping[str, SessionRegistry],
        observer: Observer,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_sessions = config.max_sessions
        self.max_per_app = config.max_sessions_per_app
        self.retry_after = min(RETRY_AFTER_MAX, max(1, math.ceil(config.check_unused_sessions / 1000)))
        self._apps = apps
        self._observer = observer
        self._building: dict[str, set[str]] = {route: set() for route in apps}
        self._index = {route: i for i, route in enumerate(sorted(apps))}  # the same in every worker
        self._workers: WorkerGroup | None = None
        self._log = RefusalLog(clock)

    @property
    def limited(self) -> bool:
        return bool(self.max_sessions or self.max_per_app)

    def share_with(self, workers: WorkerGroup | None) -> None:
        """Publish this worker's counts on its group's board from now on (with `--num-procs`)."""
        self._workers = workers if workers is not None and workers.loads is not None else None
        self.publish()

    # -- counting ----------------------------------------------------------------------------------

    def held(self, route: str) -> int:
        """Sessions app `route` holds here, those being built included."""
        return len(self._apps[route].live_sessions()) + len(self._building[route])

    def total(self) -> int:
        return sum(self.held(route) for route in self._apps)

    def full(self) -> bool:
        """This process holds `--max-sessions` sessions (or more)."""
        return bool(self.max_sessions) and self.total() >= self.max_sessions

    def server_full(self) -> bool:
        """What `/readyz` reports: this process is full and no live sibling worker has room."""
        return self.full() and not self.siblings_with_room(None)

    def _app_full(self, route: str) -> bool:
        return bool(self.max_per_app) and self.held(route) >= self.max_per_app

    # -- admitting ---------------------------------------------------------------------------------

    def check(self, route: str, session_id: str) -> None:
        """Raise `SessionLimitReached` if making session `session_id` of `route` here would pass a limit.
        A session this process holds, or is building, passes."""
        if session_id in self._building[route] or self._apps[route].get(session_id) is not None:
            return
        if self.full():
            raise SessionLimitReached(route, PROCESS, self.max_sessions)
        if self._app_full(route):
            raise SessionLimitReached(route, APP, self.max_per_app)

    @contextmanager
    def admitting(self, route: str, session_id: str, *, check: bool = True) -> Iterator[None]:
        """Around the creation of a session: refuse it past a limit (unless `check` is False: a
        session taken over from the store), and count it while it is being built."""
        if not self.limited:
            yield
            return
        if check:
            self.check(route, session_id)
        building = self._building[route]
        if session_id in building or self._apps[route].get(session_id) is not None:
            yield  # held already, or another request builds it and this one waits for that
            return
        building.add(session_id)
        self.publish()
        try:
            yield
        finally:
            building.discard(session_id)
            self.publish()

    def refused(self, refusal: SessionLimitReached) -> None:
        """A refusal reached its client: count it and log it (rate-limited)."""
        self._observer.admission_refused(refusal.app, refusal.scope)
        held = self.total() if refusal.scope == PROCESS else self.held(refusal.app)
        self._log.refused(refusal, held)

    # -- sibling workers ---------------------------------------------------------------------------

    def publish(self) -> None:
        """Put this worker's session count and full apps on the board (cheap; called on changes)."""
        workers = self._workers
        if workers is None or workers.loads is None or not self.limited:
            return
        full_apps = 0
        for route, index in self._index.items():
            if self._app_full(route):
                full_apps |= 1 << index
        workers.loads.publish_sessions(workers.number, self.total(), full_apps)

    def siblings_with_room(self, route: str | None) -> list[int]:
        """Numbers of live sibling workers that can take a new session of `route` (of any app: None)."""
        workers = self._workers
        if workers is None or workers.loads is None:
            return []
        index = self._index[route] if route is not None else None
        return workers.loads.with_room(workers.number, index, self.max_sessions)

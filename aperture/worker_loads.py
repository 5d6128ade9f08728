"""`WorkerLoads`: how many connections and sessions each `--num-procs` worker holds, shared between them.

The workers accept connections on the same listening sockets. Whichever worker the kernel wakes
first takes a connection, and with keep-alive clients (browsers, a proxy's upstream pool) the
connections taken in a burst stay with that worker for their whole life: one worker could serve
everything while the others idle. So each worker publishes its number of open connections here,
and a worker holding clearly more than the least loaded live sibling lets a new connection wait
(`DEFER` at a time, `DEFER_LIMIT` at most) for that sibling to take it (see `aperture.web.listener`).

The board is an anonymous shared memory map made by the supervisor before it forks, so only the
workers of one server see it. Each worker writes only its own slot: its load and the time of
writing (`time.monotonic`, one clock for every process of the machine). A slot not written for
`STALE` seconds (a worker that died, is starting or is stuck) is ignored, so a missing sibling
never holds new connections back.

Each slot also holds the worker's session count and which apps are at `--max-sessions-per-app`
(bit i for the i-th app in route order; apps past the 64th are never marked). A worker whose new
page view is refused for a session limit asks `with_room` for a live sibling that can take it and
forwards the view there (see `aperture.operations.admission` and `aperture.web.forward`). The
counts lag a moment behind, so a sibling may still refuse: it then answers 503 itself.
"""

from __future__ import annotations

import mmap
import struct
import time
from collections.abc import Callable

DEFER = 0.002
"""Seconds a worker over its share stops accepting, to let a less loaded sibling take a connection."""
DEFER_LIMIT = 0.05
"""Seconds after which a worker over its share accepts a waiting connection itself."""
STALE = 1.0
"""A slot older than this (seconds) is ignored."""
SLACK = 2
"""A worker is over its share when it holds more than SLACK + 1/8 more connections than the least loaded."""

_LOAD = struct.Struct("=dd")  # load, written at (time.monotonic)
_SESSIONS = struct.Struct("=qQ")  # sessions, apps at their limit (bit mask)
_SLOT_SIZE = _LOAD.size + _SESSIONS.size
APP_BITS = 64
"""Apps whose fullness a slot can mark; later apps are always taken to have room."""


class WorkerLoads:
    """Open connections per worker, in memory shared by the workers of one server."""

    def __init__(self, count: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.count = count
        self._clock = clock
        self._memory = mmap.mmap(-1, _SLOT_SIZE * count)  # anonymous, MAP_SHARED: inherited by fork

    def publish(self, number: int, load: int) -> None:
        _LOAD.pack_into(self._memory, number * _SLOT_SIZE, float(load), self._clock())

    def withdraw(self, number: int) -> None:
        """Worker `number` stops accepting (it is stopping): its siblings stop waiting for it."""
        _LOAD.pack_into(self._memory, number * _SLOT_SIZE, 0.0, 0.0)

    def publish_sessions(self, number: int, sessions: int, full_apps: int) -> None:
        """Worker `number` holds `sessions` sessions; `full_apps` marks the apps at their limit."""
        mask = full_apps & ((1 << APP_BITS) - 1)
        _SESSIONS.pack_into(self._memory, number * _SLOT_SIZE + _LOAD.size, max(0, sessions), mask)

    def _live(self, number: int, now: float) -> bool:
        _, written = _LOAD.unpack_from(self._memory, number * _SLOT_SIZE)
        return bool(written) and now - written < STALE

    def _live_loads(self, except_number: int) -> list[float]:
        now = self._clock()
        return [
            _LOAD.unpack_from(self._memory, n * _SLOT_SIZE)[0]
            for n in range(self.count)
            if n != except_number and self._live(n, now)
        ]

    def with_room(self, number: int, app_index: int | None, max_sessions: int) -> list[int]:
        """Live siblings of worker `number` that can take a new session of app `app_index` (of any
        app: None) under `max_sessions` per process (0: no limit), those with the fewest first."""
        now = self._clock()
        candidates: list[tuple[int, int]] = []
        for n in range(self.count):
            if n == number or not self._live(n, now):
                continue
            sessions, full_apps = _SESSIONS.unpack_from(self._memory, n * _SLOT_SIZE + _LOAD.size)
            if max_sessions and sessions >= max_sessions:
                continue
            if app_index is not None and app_index < APP_BITS and full_apps >> app_index & 1:
                continue
            candidates.append((sessions, n))
        return [n for _, n in sorted(candidates)]

    def over_share(self, number: int, load: int) -> bool:
        """True if worker `number`, holding `load` connections, holds clearly more than a live sibling."""
        others = self._live_loads(number)
        if not others:
            return False
        least = min(others)
        return load > least + SLACK + least / 8

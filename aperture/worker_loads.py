"""`WorkerLoads`: how many connections each `--num-procs` worker holds, shared between them.

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

_SLOT = struct.Struct("=dd")  # load, written at (time.monotonic)


class WorkerLoads:
    """Open connections per worker, in memory shared by the workers of one server."""

    def __init__(self, count: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.count = count
        self._clock = clock
        self._memory = mmap.mmap(-1, _SLOT.size * count)  # anonymous, MAP_SHARED: inherited by fork

    def publish(self, number: int, load: int) -> None:
        _SLOT.pack_into(self._memory, number * _SLOT.size, float(load), self._clock())

    def withdraw(self, number: int) -> None:
        """Worker `number` stops accepting (it is stopping): its siblings stop waiting for it."""
        _SLOT.pack_into(self._memory, number * _SLOT.size, 0.0, 0.0)

    def _live_loads(self, except_number: int) -> list[float]:
        now = self._clock()
        loads = []
        for n in range(self.count):
            if n == except_number:
                continue
            load, written = _SLOT.unpack_from(self._memory, n * _SLOT.size)
            if written and now - written < STALE:
                loads.append(load)
        return loads

    def over_share(self, number: int, load: int) -> bool:
        """True if worker `number`, holding `load` connections, holds clearly more than a live sibling."""
        others = self._live_loads(number)
        if not others:
            return False
        least = min(others)
        return load > least + SLACK + least / 8

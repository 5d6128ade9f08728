"""The periodic side of the metrics: event-loop lag probes and the gauges read from the core.

A probe sleeps `PROBE_SECONDS` on the event loop and measures how much later than asked it woke:
a loop busy with app code or big serializations wakes late, and every other session waited as
long. Every `PROBES_PER_SAMPLE` probes, `refresh` sets the gauges that describe the present
(sessions per app and state, this process's CPU time and resident memory) and the worst lag of
that period. The scrape handler also calls `refresh` first, so a single process's scrape is
exact; with `--num-procs` the other workers' figures are at most one sampling period old.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from aperture.operations.metrics_families import Families

log = logging.getLogger("aperture.server")

PROBE_SECONDS = 0.25
PROBES_PER_SAMPLE = 4  # gauges refreshed once a second


def resident_bytes() -> float | None:
    """This process's resident set size, from /proc (None where there is no /proc)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return float(int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, IndexError):
        return None


class Sampler:
    """Runs the probes on the server's event loop between `start` and `stop`."""

    def __init__(self, core: Any, families: Families) -> None:
        self._core = core
        self._families = families
        self._task: asyncio.Task[None] | None = None
        self._failed = False

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._probe())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _probe(self) -> None:
        loop = asyncio.get_running_loop()
        lag = self._families.loop_lag
        worst, count = 0.0, 0
        self.refresh()
        while True:
            due = loop.time() + PROBE_SECONDS
            await asyncio.sleep(PROBE_SECONDS)
            late = max(0.0, loop.time() - due)
            lag.observe(late)
            worst = max(worst, late)
            count += 1
            if count >= PROBES_PER_SAMPLE:
                self._families.loop_lag_max.set(worst)
                worst, count = 0.0, 0
                self.refresh()

    def refresh(self) -> None:
        """Set the gauges read from the core and the process (never raises: logged once)."""
        try:
            self._refresh()
        except Exception:
            if not self._failed:
                self._failed = True
                log.exception("Could not sample the metrics' gauges")

    def _refresh(self) -> None:
        families = self._families
        for route, registry in self._core.apps.items():
            series = families.apps.get(route)
            if series is None:
                continue
            sessions = registry.live_sessions()
            connected = sum(1 for s in sessions if s.connection_count)
            series.sessions["live"].set(len(sessions))
            series.sessions["connected"].set(connected)
            series.sessions["idle"].set(len(sessions) - connected)
        times = os.times()
        families.cpu_seconds.set(times.user + times.system)
        rss = resident_bytes()
        if rss is not None:
            families.memory_bytes.set(rss)

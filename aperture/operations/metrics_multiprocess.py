"""Metrics across `--num-procs` workers: prometheus-client's multiprocess mode, set up by the supervisor.

Before it forks, the supervisor calls `prepare(directory)`: a fresh directory of its private
(0700) workers directory becomes `PROMETHEUS_MULTIPROC_DIR`, and metric values made from then on
are kept in per-process memory-mapped files there. Each worker writes its own files; whichever
worker answers a scrape reads all of them (`scrape_registry`), so one scrape shows the whole
server: counters and histograms summed over every worker that ever ran (a restarted worker's
counts are kept), `livesum` gauges summed over the live workers, `liveall` gauges one series per
live worker (label `pid`). When a worker exits, the supervisor calls `worker_exited(pid)`, which
deletes its live gauges' files. The supervisor removes the whole directory when it stops.

The supervisor itself makes no metric objects (they are made in a worker's `server_started`), so
it writes no file.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, multiprocess, values

ENV = "PROMETHEUS_MULTIPROC_DIR"

_directory: str | None = None  # set in the supervisor before the fork, inherited by the workers


def prepare(private_directory: str) -> str:
    """Make this process's future metric objects (and its forked workers') multiprocess ones."""
    global _directory
    path = os.path.join(private_directory, "metrics")
    os.mkdir(path, 0o700)
    os.environ[ENV] = path
    # prometheus-client picks its value class when imported, before the variable was set.
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    _directory = path
    return path


def active_directory() -> str | None:
    """The multiprocess directory when this process is a `--num-procs` worker with metrics on."""
    return _directory


def worker_exited(pid: int) -> None:
    """Forget a dead worker's live gauges (its sessions, websockets and per-worker figures)."""
    if _directory is not None:
        multiprocess.mark_process_dead(pid, _directory)  # type: ignore[no-untyped-call]


def scrape_registry() -> CollectorRegistry:
    """A registry that reads every worker's files (build one per scrape)."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=_directory)  # type: ignore[no-untyped-call]
    return registry

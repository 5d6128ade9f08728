"""What the admin view shows: sessions per app, the process's memory and CPU, recent problems.

`AdminObserver` installs `RecentRecords`, a logging handler on the root logger that keeps the
last 50 records at ERROR and above and, apart from them, the last 50 warnings (so a burst of
warnings, e.g. refused websockets, never pushes an error out), from every logger that propagates
to the root (Aperture, Bokeh, Tornado, app code). `state()` builds the JSON the admin page polls.
It reads the core's registries on the event loop and creates nothing: viewing the page makes no
session. With `--num-procs` each worker answers for itself (its number and pid are in `server`).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from aperture.operations.json_logs import clip, iso_time, message_of
from aperture.operations.log_context import ContextFilter
from aperture.operations.observer import Observer

KEPT_RECORDS = 50
SESSIONS_SHOWN = 200  # per app, most recent first; totals count them all
SESSION_PREFIX = 12
MESSAGE_CHARS = 2_000
EXCEPTION_CHARS = 8_000


@dataclass(frozen=True)
class Problem:
    """A log record at WARNING or above, as the admin page lists it."""

    time: str
    level: str
    logger: str
    message: str
    app: str | None
    session: str | None
    request_id: str | None
    exception: str | None


class RecentRecords(logging.Handler):
    """Keeps the latest errors and warnings; never raises, never logs."""

    def __init__(self, keep: int = KEPT_RECORDS) -> None:
        super().__init__(logging.WARNING)
        self.addFilter(ContextFilter())  # whether or not `logs.configure` set up the root handler
        self.errors: deque[Problem] = deque(maxlen=keep)
        self.warnings: deque[Problem] = deque(maxlen=keep)
        self._formatter = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            problem = self._problem(record)
            (self.errors if record.levelno >= logging.ERROR else self.warnings).append(problem)
        except Exception:  # a broken record must not break the code that logged it
            pass

    def snapshot(self) -> tuple[list[Problem], list[Problem]]:
        """The kept errors and warnings, newest first (records may arrive from any thread)."""
        with self.lock or threading.RLock():
            return list(reversed(self.errors)), list(reversed(self.warnings))

    def _problem(self, record: logging.LogRecord) -> Problem:
        context = getattr(record, "aperture", None)
        context = context if isinstance(context, dict) else {}
        exception = None
        if record.exc_info:
            exception = clip(self._formatter.formatException(record.exc_info), EXCEPTION_CHARS)
        session = context.get("session")
        return Problem(
            time=iso_time(record.created),
            level=record.levelname,
            logger=record.name,
            message=clip(message_of(record), MESSAGE_CHARS),
            app=_text(context.get("app")),
            session=str(session)[:SESSION_PREFIX] if session else None,
            request_id=_text(context.get("request_id")),
            exception=exception,
        )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


class ProcessSampler:
    """Memory and CPU of this process, read from the OS (Linux /proc; elsewhere what `os` knows).

    The CPU percentage covers the time since the previous sample (at least one second earlier),
    so a page polling every 2 s shows the load of the last 2 s; 100 % is one core.
    """

    MIN_INTERVAL = 1.0

    def __init__(self) -> None:
        self.started = time.monotonic()
        self._last = (time.monotonic(), self.cpu_seconds())
        self._percent: float | None = None

    @staticmethod
    def cpu_seconds() -> float:
        times = os.times()
        return times.user + times.system

    @staticmethod
    def rss_bytes() -> int | None:
        try:
            with open("/proc/self/statm") as statm:
                return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return None

    def cpu_percent(self) -> float | None:
        now, cpu = time.monotonic(), self.cpu_seconds()
        then, cpu_then = self._last
        if now - then >= self.MIN_INTERVAL:
            self._percent = round(100.0 * (cpu - cpu_then) / (now - then), 1)
            self._last = (now, cpu)
        return self._percent

    def sample(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "uptime_seconds": round(time.monotonic() - self.started, 1),
            "rss_bytes": self.rss_bytes(),
            "cpu_percent": self.cpu_percent(),
            "cpu_seconds": round(self.cpu_seconds(), 2),
            "threads": threading.active_count(),
        }


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def _seconds_since(value: Any, now: float) -> float | None:
    """Seconds from a `time.monotonic()` reading (what sessions keep) to `now`; None if unknown."""
    if isinstance(value, (int, float)):
        return round(max(0.0, now - float(value)), 1)
    return None


def session_row(session: Any, now: float) -> dict[str, Any]:
    """One session as the page lists it; fields a session does not keep are null."""
    in_flight = getattr(session, "in_flight", None)
    return {
        "id": str(session.id)[:SESSION_PREFIX],
        "age_seconds": _seconds_since(getattr(session, "created", None), now),
        "connections": session.connection_count,
        "last_activity_seconds": _seconds_since(getattr(session, "last_activity", None), now),
        "in_flight": in_flight if isinstance(in_flight, int) else None,
        "busy": bool(getattr(session, "busy", False)),
    }


def app_summary(route: str, sessions: list[Any], now: float, shown: int = SESSIONS_SHOWN) -> dict[str, Any]:
    """An app's totals and its `shown` most recent sessions."""
    recent = sorted(sessions, key=lambda s: getattr(s, "created", 0.0) or 0.0, reverse=True)[:shown]
    return {
        "route": route,
        "sessions": len(sessions),
        "connections": sum(s.connection_count for s in sessions),
        "unused": sum(1 for s in sessions if s.connection_count == 0),
        "busy": sum(1 for s in sessions if getattr(s, "busy", False)),
        "shown": len(recent),
        "list": [session_row(s, now) for s in recent],
    }


class AdminObserver(Observer):
    """Holds what the admin page shows beyond the core's own state: recent problems, CPU samples."""

    def __init__(self, core: Any) -> None:
        self.core = core
        self.process = ProcessSampler()
        self.records = RecentRecords()
        self.versions = {
            "aperture": _version("aperture"),
            "bokeh": _version("bokeh"),
            "python": sys.version.split()[0],
        }
        logging.getLogger().addHandler(self.records)  # here, so problems while starting are kept

    def server_stopping(self) -> None:
        logging.getLogger().removeHandler(self.records)

    def worker(self) -> dict[str, int] | None:
        workers = getattr(getattr(self.core, "peers", None), "workers", None)
        if workers is None:
            return None
        return {"number": workers.number, "count": workers.count}

    def state(self) -> dict[str, Any]:
        """Everything the admin page shows, as JSON-ready data (call on the event loop)."""
        now = time.monotonic()
        errors, warnings = self.records.snapshot()
        apps = [
            app_summary(route, registry.live_sessions(), now)
            for route, registry in sorted(self.core.apps.items())
        ]
        return {
            "time": iso_time(time.time()),
            "server": {
                **self.process.sample(),
                "worker": self.worker(),
                "versions": self.versions,
                "draining": bool(self.core.draining),
            },
            "totals": {
                "sessions": sum(a["sessions"] for a in apps),
                "connections": sum(a["connections"] for a in apps),
            },
            "apps": apps,
            "errors": [asdict(p) for p in errors],
            "warnings": [asdict(p) for p in warnings],
        }

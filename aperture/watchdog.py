"""`Watchdog`: ends a server process whose graceful shutdown overran its deadline.

A callback in an endless loop can hold the event loop itself, so nothing running on the loop
can enforce `--shutdown-timeout`. The watchdog is a daemon thread started with the server;
`arm(deadline)` wakes it (it only writes an attribute and a byte to a pipe, so a signal handler
may call it while the loop is stuck). At the deadline it logs what was still running - the
stuck sessions and the stacks of the threads running app code - and calls `os._exit` with
`EXIT_ABANDONED`, because a normal exit would wait forever for a thread that never returns.
Only processes that own themselves (the CLI, a `--num-procs` worker) use one.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable

log = logging.getLogger("aperture.server")

EXIT_ABANDONED = 3  # shutdown gave up on a callback or hook that did not return in time
REPORT_SECONDS = 0.4  # the report must not keep the process past its deadline (it may block on a lock)


class Watchdog:
    """One per process; `start()` once, `arm()` from anywhere (signal handlers included)."""

    def __init__(self, describe: Callable[[], list[str]]) -> None:
        self._describe = describe
        self._deadline: float | None = None
        self._wake_read, self._wake_write = os.pipe()
        self._thread = threading.Thread(target=self._run, name="aperture-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def arm(self, deadline: float) -> None:
        """Exit at `deadline` (time.monotonic) unless the process has ended by then; first call wins."""
        if self._deadline is not None:
            return
        self._deadline = deadline
        try:
            os.write(self._wake_write, b"!")
        except OSError:
            pass

    def _run(self) -> None:
        while self._deadline is None:
            os.read(self._wake_read, 1)
        time.sleep(max(0.0, self._deadline - time.monotonic()))
        self.fire()

    def fire(self) -> None:
        """Log what is still running (within REPORT_SECONDS) and end the process now."""
        reporter = threading.Thread(target=self._report, name="aperture-watchdog-report", daemon=True)
        reporter.start()
        reporter.join(REPORT_SECONDS)
        os._exit(EXIT_ABANDONED)

    def _report(self) -> None:
        try:
            lines = self._describe()
        except Exception as exc:  # the report is best effort; exiting is what matters
            lines = [f"(could not list the stuck work: {exc!r})"]
        log.error(
            "Shutdown did not finish within --shutdown-timeout; exiting with status %d. Still running: %s",
            EXIT_ABANDONED,
            "; ".join(lines) or "nothing known (a thread started by app code?)",
        )
        for name, stack in app_stacks():
            log.error("Stack of thread %s:\n%s", name, stack)
        _flush_logs()


def exit_abandoned(left_running: list[str]) -> None:
    """End the process with `EXIT_ABANDONED` now: shutdown finished but left these running, and a
    thread still running app code would keep a normal exit waiting forever."""
    log.error(
        "Shutdown left work running (%s); exiting with status %d", "; ".join(left_running), EXIT_ABANDONED
    )
    _flush_logs()
    os._exit(EXIT_ABANDONED)


def _flush_logs() -> None:
    for handler in logging.getLogger().handlers + log.handlers:
        handler.flush()


def app_stacks(limit: int = 8) -> list[tuple[str, str]]:
    """Stacks of the main thread and of the app-callback threads that are not idle."""
    names = {t.ident: t.name for t in threading.enumerate()}
    main = threading.main_thread().ident
    stacks = []
    for ident, frame in sys._current_frames().items():
        name = names.get(ident, str(ident))
        if ident != main and not name.startswith("aperture-app"):
            continue
        if frame.f_code.co_name == "_worker" and "concurrent" in frame.f_code.co_filename:
            continue  # an idle pool thread waiting for work
        stacks.append((name, "".join(traceback.format_stack(frame, limit=limit))))
    return stacks

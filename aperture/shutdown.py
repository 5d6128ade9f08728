"""The clock of a graceful shutdown, and the signals that start one.

`Deadlines.plan` splits `--shutdown-timeout` (counted from the signal) into steps: the
readiness delay (`--shutdown-delay`, at most half the timeout), the time callbacks in
flight get to return, the time hooks get to finish, and the hard deadline at which the
watchdog ends the process, a little before the timeout so that the process is gone
within it. `SignalCatcher` installs Python-level handlers for SIGTERM, SIGHUP and SIGINT:
unlike `loop.add_signal_handler` they run even while app code holds the event loop, so the
watchdog is armed whatever the loop is doing.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
EXIT_RESERVE = 0.5  # seconds the watchdog needs to log what is stuck and exit
HOOK_RESERVE = 1.0  # seconds kept for on_session_destroyed / on_server_unloaded after the work deadline


@dataclass(frozen=True)
class Deadlines:
    """`time.monotonic()` values for the steps of one shutdown."""

    began: float
    delay_until: float  # /readyz says 503 while everything else still works
    work: float  # callbacks still running then are left behind (their sessions are destroyed anyway)
    hooks: float  # hooks still running then are cancelled
    hard: float  # the watchdog ends the process

    @classmethod
    def plan(cls, began: float, timeout: float, delay: float) -> Deadlines:
        hard = began + timeout - min(EXIT_RESERVE, timeout / 4)
        delay_until = began + min(max(delay, 0.0), timeout / 2)
        work = hard - min(HOOK_RESERVE, (hard - delay_until) / 3)
        return cls(began=began, delay_until=delay_until, work=work, hooks=hard - 0.1, hard=hard)


class SignalCatcher:
    """Route the stop signals to `handler(signum)` in the main thread; `restore()` undoes it."""

    def __init__(self, handler: Callable[[int], None]) -> None:
        self._handler = handler
        self._previous: dict[signal.Signals, Any] = {}

    def install(self) -> None:
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._on_signal)
        # A --num-procs worker starts with these blocked (see cli/workers.py): deliver them now.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._handler(signum)

    def restore(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()

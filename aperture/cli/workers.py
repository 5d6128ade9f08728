"""`--num-procs N`: N worker processes sharing the listening sockets, under one supervisor.

The parent loads the apps and binds the sockets, then forks the workers and only
supervises: a worker that dies is restarted (at most `MAX_RESTARTS` times in all),
and SIGTERM/SIGINT to the parent are passed on to every worker, which shut down
gracefully; the parent exits 0 once they are gone (workers still running after
their shutdown timeout plus a margin are killed). Each worker logs its own pid.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import time
from collections.abc import Callable

from aperture.errors import ConfigError

log = logging.getLogger("aperture.server")

MAX_RESTARTS = 100
PR_SET_PDEATHSIG = 1
GRACE_MARGIN = 5.0


def _die_with_parent() -> None:
    """On Linux, have the kernel send SIGTERM to this worker if the supervisor dies (even by SIGKILL)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: workers outlive a killed supervisor, as with bokeh serve


def check_forking_available() -> None:
    if not hasattr(os, "fork"):
        raise ConfigError("--num-procs: more than one process needs os.fork, which this platform lacks")


class Supervisor:
    """Forks and watches the worker processes."""

    def __init__(self, count: int, serve: Callable[[int], None], shutdown_timeout: float) -> None:
        self.count = count
        self.serve = serve
        self.shutdown_timeout = shutdown_timeout
        self.children: dict[int, int] = {}  # pid -> worker number
        self.stopping = False
        self.restarts = 0

    def spawn(self, number: int) -> None:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            _die_with_parent()
            code = 0
            try:
                self.serve(number)
            except BaseException:
                log.exception("Worker %d crashed", number)
                code = 1
            finally:
                os._exit(code)
        self.children[pid] = number

    def _forward(self, signum: int, frame: object) -> None:
        if not self.stopping:
            log.info("Received %s, stopping %d workers", signal.Signals(signum).name, len(self.children))
        self.stopping = True
        for pid in list(self.children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def run(self) -> int:
        for number in range(self.count):
            self.spawn(number)
        signal.signal(signal.SIGTERM, self._forward)
        signal.signal(signal.SIGINT, self._forward)
        deadline: float | None = None
        while self.children:
            if self.stopping and deadline is None:
                deadline = time.monotonic() + self.shutdown_timeout + GRACE_MARGIN
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                if deadline is not None and time.monotonic() > deadline:
                    self._kill_remaining()
                time.sleep(0.05)
                continue
            number = self.children.pop(pid, -1)
            if number < 0 or self.stopping:
                continue
            self._restart(number, pid, status)
        return 0

    def _restart(self, number: int, pid: int, status: int) -> None:
        if self.restarts >= MAX_RESTARTS:
            log.error("Worker %d (pid %d) exited; too many restarts, not restarting", number, pid)
            return
        self.restarts += 1
        how = (
            f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"status {os.WEXITSTATUS(status)}"
        )
        log.warning("Worker %d (pid %d) exited with %s; restarting it", number, pid, how)
        self.spawn(number)

    def _kill_remaining(self) -> None:
        for pid in list(self.children):
            log.warning("Worker pid %d did not stop in time; killing it", pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

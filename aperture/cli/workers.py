"""`--num-procs N`: N worker processes sharing the listening sockets, under one supervisor.

The parent loads the apps and binds the sockets, makes a private directory (mode 0700) for the
workers' relay sockets, then forks the workers and only supervises. A worker that dies is
restarted after a back-off that doubles with each death inside `--worker-restart-window`; when
more than `--worker-restart-limit` deaths fall inside that window the supervisor gives up, stops
the other workers gracefully and exits with status 1, so a service manager sees the failure
(systemd's `Restart=on-failure`). SIGTERM, SIGINT and SIGHUP to the parent are passed on to every
worker as SIGTERM (each shuts down gracefully); the parent exits once they are gone (workers still
running after their shutdown timeout plus a margin are killed) with 0, or 1 if a worker failed to
stop cleanly.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable

from aperture.errors import ConfigError

log = logging.getLogger("aperture.server")

PR_SET_PDEATHSIG = 1
GRACE_MARGIN = 5.0
FIRST_BACKOFF = 0.25
MAX_BACKOFF = 8.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


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


def private_directory() -> str:
    """A fresh directory only this user can enter, for the workers' relay sockets."""
    return tempfile.mkdtemp(prefix="aperture-workers-")  # mkdtemp creates it with mode 0700


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"status {os.WEXITSTATUS(status)}"


class Supervisor:
    """Forks and watches the worker processes."""

    def __init__(
        self,
        count: int,
        serve: Callable[[int], None],
        shutdown_timeout: float,
        *,
        restart_limit: int = 10,
        restart_window: float = 60.0,
        directory: str | None = None,
        on_exit: Callable[[int], None] | None = None,
    ) -> None:
        self.count = count
        self.on_exit = on_exit  # told each reaped worker's pid (metrics forget its live gauges)
        self.serve = serve
        self.shutdown_timeout = shutdown_timeout
        self.restart_limit = restart_limit
        self.restart_window = restart_window
        self.directory = directory
        self.children: dict[int, int] = {}  # pid -> worker number
        self.pending: dict[int, float] = {}  # worker number -> when to start it again
        self.deaths: collections.deque[float] = collections.deque()
        self.stopping = False
        self.failed = False

    def spawn(self, number: int) -> None:
        # The child starts with the stop signals blocked: they stay pending until its server has
        # installed its own handlers (`Server.serve` unblocks them), so none is lost or fatal.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        pid = os.fork()
        if pid != 0:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        else:
            for sig in STOP_SIGNALS:
                signal.signal(sig, signal.SIG_DFL)
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

    def _on_signal(self, signum: int, frame: object) -> None:
        if not self.stopping:
            log.info("Received %s, stopping %d workers", signal.Signals(signum).name, len(self.children))
        self._stop_all()

    def _stop_all(self) -> None:
        self.stopping = True
        self.pending.clear()
        for pid in list(self.children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def run(self) -> int:
        try:
            for sig in STOP_SIGNALS:
                signal.signal(sig, self._on_signal)
            for number in range(self.count):
                self.spawn(number)
            self._watch()
        finally:
            if self.directory is not None:
                shutil.rmtree(self.directory, ignore_errors=True)
        return 1 if self.failed else 0

    def _watch(self) -> None:
        deadline: float | None = None
        while self.children or self.pending:
            now = time.monotonic()
            if self.stopping and deadline is None:
                deadline = now + self.shutdown_timeout + GRACE_MARGIN
            for number, when in list(self.pending.items()):
                if when <= now and not self.stopping:
                    del self.pending[number]
                    self.spawn(number)
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pid, status = 0, 0
                if not self.pending:
                    break
            if pid == 0:
                if deadline is not None and time.monotonic() > deadline:
                    self._kill_remaining()
                time.sleep(0.05)
                continue
            number = self.children.pop(pid, -1)
            if number < 0:
                continue
            if self.on_exit is not None:
                try:
                    self.on_exit(pid)
                except Exception:
                    log.exception("Error cleaning up after worker pid %d", pid)
            if self.stopping:
                if status != 0:
                    log.warning("Worker %d (pid %d) stopped with %s", number, pid, _describe(status))
                    self.failed = True
                continue
            self._worker_died(number, pid, status)

    def _worker_died(self, number: int, pid: int, status: int) -> None:
        now = time.monotonic()
        self.deaths.append(now)
        while self.deaths and self.deaths[0] < now - self.restart_window:
            self.deaths.popleft()
        recent = len(self.deaths)
        if recent > self.restart_limit:
            log.error(
                "Worker %d (pid %d) exited with %s: %d worker deaths within %g s is more than "
                "--worker-restart-limit %d; stopping the server",
                number, pid, _describe(status), recent, self.restart_window, self.restart_limit,
            )  # fmt: skip
            self.failed = True
            self._stop_all()
            return
        delay = min(FIRST_BACKOFF * 2 ** (recent - 1), MAX_BACKOFF)
        log.warning(
            "Worker %d (pid %d) exited with %s; restarting it in %.2f s (%d deaths within %g s)",
            number, pid, _describe(status), delay, recent, self.restart_window,
        )  # fmt: skip
        self.pending[number] = now + delay

    def _kill_remaining(self) -> None:
        for pid in list(self.children):
            log.warning("Worker pid %d did not stop in time; killing it", pid)
            self.failed = True
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

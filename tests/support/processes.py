"""Stopping child processes the tests started: by PID, SIGTERM then SIGKILL, then their group.

A process is waited for without being reaped until its process group has been swept, so
its PID (the group id) cannot be reused by an unrelated process in between.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time


def signal_pid(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def wait_unreaped(pid: int, timeout: float) -> bool:
    """Wait for ``pid`` to exit without reaping it; True if it exited within ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        if info is not None:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def stop_group_leader(proc: subprocess.Popen[str], timeout: float, *, running: bool) -> int:
    """SIGTERM (if ``running``), SIGKILL after ``timeout``, sweep the group, reap; the exit code."""
    if running:
        signal_pid(proc.pid, signal.SIGTERM)
    if not wait_unreaped(proc.pid, timeout):
        signal_pid(proc.pid, signal.SIGKILL)
        wait_unreaped(proc.pid, timeout)
    if proc.returncode is None:
        # The exited leader is not reaped yet, so its PID (the group id) cannot have been reused.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return proc.wait(timeout=timeout)

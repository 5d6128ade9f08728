"""The `--num-procs` supervisor: restarts limited by rate, a failing exit, SIGHUP is graceful."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

from tests.support.wsclient import fetch_token

APPS = "tests/apps"
WORKER_LINE = r"Worker (\d) serving with process id: (\d+)"


def worker_pids(server) -> dict[int, int]:
    """The newest pid of each worker number, from the log."""
    return {int(n): int(pid) for n, pid in re.findall(WORKER_LINE, server.logs())}


def wait_for_workers(server, count: int, seen: int, timeout: float = 20) -> dict[int, int]:
    deadline = time.monotonic() + timeout
    while len(re.findall(WORKER_LINE, server.logs())) < seen and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = worker_pids(server)
    assert len(pids) == count, server.logs()
    return pids


def test_crashing_workers_are_restarted_with_backoff_then_the_server_fails(server_factory):
    server = server_factory(
        [f"{APPS}/demo.py"],
        ["--num-procs", "2", "--worker-restart-limit", "2", "--worker-restart-window", "60"],
    )
    pids = wait_for_workers(server, 2, seen=2)
    for death in range(1, 3):  # two deaths are survived, each restart after a growing delay
        os.kill(pids[0], signal.SIGKILL)
        pids = wait_for_workers(server, 2, seen=2 + death)
        fetch_token(server.url("/demo"))  # still serving
    delays = [float(d) for d in re.findall(r"restarting it in ([\d.]+) s", server.logs())]
    assert len(delays) == 2 and delays[1] > delays[0], server.logs()
    os.kill(pids[1], signal.SIGKILL)  # the third death within the window: give up
    deadline = time.monotonic() + 30
    while server.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not server.running
    assert server.stop() == 1, "a service manager must see the failure (Restart=on-failure)"
    assert "--worker-restart-limit 2; stopping the server" in server.logs()
    for pid in worker_pids(server).values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_sighup_stops_the_workers_gracefully(server_factory, tmp_path):
    events = tmp_path / "events.txt"
    server = server_factory([f"{APPS}/hooks_app.py"], ["--num-procs", "2"], env={"HOOKS_EVENTS": str(events)})
    wait_for_workers(server, 2, seen=2)
    for _ in range(4):
        fetch_token(server.url("/hooks_app"))  # sessions to destroy on the way out
    os.kill(server.pid, signal.SIGHUP)
    deadline = time.monotonic() + 30
    while server.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.stop() == 0
    assert "Received SIGHUP, stopping 2 workers" in server.logs()
    destroyed = [x for x in events.read_text().splitlines() if x.startswith("destroyed ")]
    assert len(destroyed) == 4, "every session's on_session_destroyed ran"


def test_restart_limit_must_be_sane():
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "aperture", "serve", f"{APPS}/demo.py", "--worker-restart-window", "0"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 1 and "--worker-restart-window must be > 0" in done.stderr

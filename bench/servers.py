"""Starting and stopping the servers under test.

A `Slot` is a server command (e.g. `[python, -m, bokeh, serve]`). `Slot.serve(apps, ...)` starts a
fresh process `taskset -c <cpu> <cmd> <apps> --port N --address 127.0.0.1 <args>` on a free port
picked here, waits for the "Bokeh app running at:" line on its log (stdout and stderr go to a
file, so nothing has to drain a pipe), and on exit stops it by PID: SIGTERM, then SIGKILL for
the process and any children it left (each by PID).

Placeholders in the command and the scenario's args: `{port}` is the server's port; `{redis}`
starts a fresh `redis-server` for this server (`bench/redisproc.py`: loopback, temporary directory,
same CPU, counted as server CPU) and becomes its URL - e.g. `aperture serve --session-store {redis}`.
That Redis is stopped by PID after the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.loadgen.client import Target
from bench.redisproc import RedisProcess, start_redis, stop_redis, substitute, wants_redis
from bench.sysload import HZ, cpu_ticks, descendants, same_process

APPS_DIR = Path(__file__).parent / "apps"
_START_RE = re.compile(r"Bokeh app running at: http://[^:/\s]+:(\d+)/(\S*)")
_live: set[int] = set()  # PIDs of servers currently running (for the load monitor)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def live_server_pids() -> set[int]:
    return set(_live)


def register_pid(pid: int) -> None:
    """Count a helper process started for a scenario (e.g. nginx) as server-side CPU."""
    _live.add(pid)


def unregister_pid(pid: int) -> None:
    _live.discard(pid)


def app_path(name: str) -> str:
    return str(APPS_DIR / f"{name}.py")


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    apps: list[str]
    host: str = "127.0.0.1"
    redis: RedisProcess | None = None  # the server's own redis-server (`{redis}` in its command)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def target(self, app: str) -> Target:
        return Target(self.host, self.port, f"/{app}")

    def rss_kib(self) -> int:
        """Resident set size of the server and all its descendants (KiB)."""
        total = 0
        for pid in {self.pid, *descendants(self.pid)}:
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        return total

    def log_tail(self, n: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        return ""

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the server, its descendants and its Redis."""
        pids = {self.pid, *descendants(self.pid)}
        if self.redis is not None:
            pids.add(self.redis.pid)
        return sum(cpu_ticks(pid) for pid in pids) / HZ

    def redis_cpu_seconds(self) -> float:
        """The part of `cpu_seconds` that is its Redis's (0 without one)."""
        return cpu_ticks(self.redis.pid) / HZ if self.redis is not None else 0.0


@dataclass
class Slot:
    name: str
    cmd: list[str]
    cpu: int | str | None = 1  # taskset CPU list ("0,1" = both)
    log_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bench-logs-")))

    @contextlib.asynccontextmanager
    async def serve(
        self,
        apps: list[str],
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> AsyncIterator[Server]:
        server = await self.start(apps, args, env, timeout)
        try:
            yield server
        finally:
            await stop(server)

    async def start(
        self,
        apps: list[str],
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> Server:
        port = free_port()
        cmd = list(self.cmd) + [app_path(a) for a in apps]
        cmd += ["--port", str(port), "--address", "127.0.0.1"] + list(args or [])
        values = {"port": str(port)}
        redis = None
        if wants_redis(cmd):
            redis = await start_redis(free_port(), self.cpu)
            _live.add(redis.pid)
            values["redis"] = redis.url
        cmd = substitute(cmd, values)
        if self.cpu is not None and shutil.which("taskset"):
            cmd = ["taskset", "-c", str(self.cpu)] + cmd
        log_path = self.log_dir / f"{self.name}-{port}-{int(time.time() * 1000)}.log"
        full_env = {**os.environ, **(env or {})}
        try:
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=full_env
                )
        except BaseException:
            if redis is not None:
                await _stop_redis(redis)
            raise
        server = Server(proc, port, log_path, apps, redis=redis)
        _live.add(proc.pid)
        try:
            await _wait_started(server, timeout)
        except BaseException:
            await stop(server)
            raise
        return server


async def _wait_started(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"server exited with {server.proc.returncode}:\n{server.log_tail()}")
        text = server.log_path.read_text(errors="replace")
        ports = {int(m.group(1)) for m in _START_RE.finditer(text)}
        if server.port in ports:
            with contextlib.suppress(OSError):
                with socket.create_connection((server.host, server.port), timeout=1.0):
                    return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"server did not start within {timeout:.0f}s:\n{server.log_tail()}")


async def stop(server: Server, grace: float = 5.0) -> None:
    """SIGTERM the server by PID, wait, then SIGKILL it and any leftover children (by PID)."""
    proc = server.proc
    children = descendants(proc.pid)
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(5)
    for pid, started in children.items():
        if same_process(pid, started):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    _live.discard(proc.pid)
    if server.redis is not None:  # after the server: a graceful shutdown writes to it last
        await _stop_redis(server.redis)
        server.redis = None


async def _stop_redis(redis: RedisProcess) -> None:
    await stop_redis(redis)
    _live.discard(redis.pid)

"""A throwaway `redis-server` for store-on runs (`{redis}` in a slot's command).

`Slot.start` starts one per server it starts when the server's command contains `{redis}`: a
`redis-server` on a free 127.0.0.1 port, in a fresh temporary directory, persisting nothing
(`--save ""`, no AOF), pinned to the server's CPU (its CPU time counts as server CPU in the load
figures), and stops it by PID right after that server (SIGTERM, then SIGKILL). `{redis}` becomes
its URL, `redis://127.0.0.1:PORT/0`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PLACEHOLDER = "{redis}"
REDIS_SERVER = "redis-server"


def redis_program() -> str | None:
    return shutil.which(REDIS_SERVER) or (
        "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None
    )


def wants_redis(words: list[str]) -> bool:
    return any(PLACEHOLDER in w for w in words)


def substitute(words: list[str], values: dict[str, str]) -> list[str]:
    """Replace `{name}` placeholders (e.g. `{port}`, `{redis}`) in every word of a command."""
    out = []
    for word in words:
        for name, value in values.items():
            word = word.replace("{" + name + "}", value)
        out.append(word)
    return out


def redis_command(program: str, port: int, directory: Path) -> list[str]:
    return [
        program,
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(directory),
        "--save", "",
        "--appendonly", "no",
        "--logfile", str(directory / "redis.log"),
        "--daemonize", "no",
    ]  # fmt: skip


@dataclass
class RedisProcess:
    proc: subprocess.Popen[bytes]
    port: int
    directory: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def log_tail(self, n: int = 10) -> str:
        with contextlib.suppress(OSError):
            return "\n".join((self.directory / "redis.log").read_text(errors="replace").splitlines()[-n:])
        return ""


async def start_redis(port: int, cpu: int | str | None = None, timeout: float = 10.0) -> RedisProcess:
    """Start redis-server on 127.0.0.1:`port` and wait until it answers PING."""
    program = redis_program()
    if program is None:
        raise RuntimeError("redis-server is not installed (Debian package redis-server); `{redis}` needs it")
    directory = Path(tempfile.mkdtemp(prefix="bench-redis-"))
    cmd = redis_command(program, port, directory)
    if cpu is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(cpu)] + cmd
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    redis = RedisProcess(proc, port, directory)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {proc.returncode}:\n{redis.log_tail()}")
            if await asyncio.to_thread(_answers_ping, port):
                return redis
            await asyncio.sleep(0.05)
        raise TimeoutError(f"redis-server did not answer on port {port} within {timeout:.0f}s")
    except BaseException:
        await stop_redis(redis)
        raise


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.settimeout(0.5)
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


async def stop_redis(redis: RedisProcess, grace: float = 5.0) -> None:
    """SIGTERM by PID, wait, SIGKILL if needed; remove its directory."""
    proc = redis.proc
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
    shutil.rmtree(redis.directory, ignore_errors=True)

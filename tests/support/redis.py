"""A real `redis-server` for the session-store tests: loopback port, temporary directory, own PID.

    with RedisServer(tmp_path) as redis:
        url = redis.url                      # redis://127.0.0.1:PORT/0
        redis.client().dbsize()              # a synchronous redis-py client for assertions
        redis.pause(); redis.resume()        # SIGSTOP / SIGCONT: Redis hangs (slow store)
        redis.stop(); redis.start()          # down and back on the same port

`require_redis_server()` skips a test when the program is missing, or fails it under `CI=true`.
Nothing is persisted (`--save ""`, no AOF), so a restart comes back empty unless `keep_data`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import signal_pid, stop_group_leader
from tests.support.servers import free_port

REDIS_SERVER = "redis-server"


def require_redis_server() -> str:
    """The redis-server path; otherwise skip the test, or fail it when `CI=true`."""
    path = shutil.which(REDIS_SERVER) or (
        "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None
    )
    if path:
        return path
    message = "redis-server is not installed; session-store tests need it (Debian package redis-server)"
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(message + " (in CI a missing tool is a failure, not a skip)")
    pytest.skip(message)


class RedisServer:
    """One redis-server process on a free loopback port."""

    def __init__(
        self,
        directory: Path,
        *,
        password: str | None = None,
        tls: tuple[Path, Path, Path] | None = None,  # (cert, key, CA cert): serve TLS only
        keep_data: bool = False,
    ) -> None:
        self.program = require_redis_server()
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.password = password
        self.tls = tls
        self.keep_data = keep_data
        self.port = free_port()
        self.proc: subprocess.Popen[str] | None = None
        self.log_path = self.directory / f"redis-{self.port}.log"

    @property
    def url(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        auth = f":{self.password}@" if self.password else ""
        url = f"{scheme}://{auth}127.0.0.1:{self.port}/0"
        if self.tls:
            url += f"?ssl_ca_certs={self.tls[2]}&ssl_cert_reqs=required&ssl_check_hostname=false"
        return url

    def command(self) -> list[str]:
        args = [
            self.program,
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "no",
            "--logfile", str(self.log_path),
            "--daemonize", "no",
        ]  # fmt: skip
        if self.tls:
            cert, key, ca = self.tls
            args += ["--port", "0", "--tls-port", str(self.port)]
            args += ["--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca)]
            args += ["--tls-auth-clients", "no"]
        else:
            args += ["--port", str(self.port)]
        if self.password:
            args += ["--requirepass", self.password]
        if self.keep_data:
            args[args.index("--save") + 1] = "3600 1"
        return args

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            self.command(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited: {self.proc.stderr.read() if self.proc.stderr else ''}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not listen on {self.port} within 10 s")

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL), by its PID."""
        proc, self.proc = self.proc, None
        if proc is not None:
            signal_pid(proc.pid, signal.SIGCONT)
            stop_group_leader(proc, 5.0, running=proc.poll() is None)
            if proc.stderr is not None:
                proc.stderr.close()

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            signal_pid(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            if proc.stderr is not None:
                proc.stderr.close()

    def pause(self) -> None:
        """SIGSTOP: Redis accepts connections but answers nothing (a hung or very slow store)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def client(self) -> Any:
        import redis

        return redis.Redis.from_url(self.url, socket_timeout=5)

    def session_keys(self) -> list[bytes]:
        return sorted(self.client().scan_iter(match="aperture:s:*"))

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stored_key(route: str, session_id: str) -> str:
    """The session's hash, computed here independently: `aperture:s:` and sha256(route NUL session id)."""
    return "aperture:s:" + hashlib.sha256(f"{route}\0{session_id}".encode()).hexdigest()[:40]


def wait_stored(store: Any, key: str, needle: bytes, timeout: float = 10.0) -> dict[bytes, bytes]:
    """Poll the session's hash until one of its values contains `needle`; return the hash."""
    deadline = time.monotonic() + timeout
    while True:
        fields = store.hgetall(key)
        if any(needle in value for value in fields.values()):
            return dict(fields)
        assert time.monotonic() < deadline, f"{needle!r} not stored under {key} in {timeout} s: {fields}"
        time.sleep(0.02)

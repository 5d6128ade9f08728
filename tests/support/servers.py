"""Start a real server process (aperture or ``bokeh serve``) on a free loopback port.

``ServerProcess`` is a context manager: entering starts the program, waits for
the first ``Bokeh app running at:`` line and returns; leaving stops it. Its
stdout and stderr are drained by reader threads into buffers from the start,
so a chatty server can never block on a full pipe, and ``logs()`` always has
everything written so far. The server runs in its own session (process group):
stopping sends SIGTERM to its PID, escalates to SIGKILL after a grace period,
and finally kills whatever is left in that group (``--num-procs`` workers), which
only ever holds processes this object started.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from tests.support.processes import stop_group_leader

REPO_ROOT = Path(__file__).resolve().parents[2]
APERTURE = (sys.executable, "-m", "aperture", "serve")
BOKEH = (sys.executable, "-m", "bokeh", "serve")
READY_LINE = "Bokeh app running at:"


class ServerStartError(RuntimeError):
    """The server exited, or never printed its ready line, within the timeout."""


class _PortInUse(ServerStartError):
    pass


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the caller may still lose a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def merged_env(overrides: Mapping[str, str | None] | None) -> dict[str, str]:
    """``os.environ`` with ``overrides`` on top; a value of None removes the variable."""
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")  # so prints from app code show up promptly
    for key, value in (overrides or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


class _Stream:
    """Drains one pipe on a daemon thread; lines land both here and in a shared, ordered log."""

    def __init__(self, pipe: IO[str] | None, combined: list[str], lock: threading.Condition) -> None:
        self.lines: list[str] = []
        self._combined = combined
        self._lock = lock
        self._thread = threading.Thread(target=self._drain, args=(pipe,), daemon=True)
        self._thread.start()

    def _drain(self, pipe: IO[str] | None) -> None:
        assert pipe is not None
        for line in iter(pipe.readline, ""):
            with self._lock:
                self.lines.append(line)
                self._combined.append(line)
                self._lock.notify_all()
        pipe.close()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


class ServerProcess:
    """One server process on a free port; use as a context manager.

    ``program`` is the command up to and including the ``serve`` subcommand.
    ``args`` follow the app paths; any ``{port}`` in them is replaced by the chosen
    port (e.g. ``"--allow-websocket-origin=127.0.0.1:{port}"``). ``--port N`` (a
    free port, or ``port`` if given) is added unless ``port=None`` or ``args`` hold
    ``--unix-socket``; ``--address 127.0.0.1`` unless ``address=None`` or ``args``
    hold ``--address``. ``env`` is merged over ``os.environ`` (None deletes a key).
    """

    def __init__(
        self,
        apps: Sequence[str | os.PathLike[str]] = (),
        args: Sequence[str] = (),
        *,
        program: Sequence[str] = APERTURE,
        env: Mapping[str, str | None] | None = None,
        cwd: str | os.PathLike[str] | None = REPO_ROOT,
        address: str | None = "127.0.0.1",
        port: int | None = 0,
        ready_line: str = READY_LINE,
        start_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        attempts: int = 3,
    ) -> None:
        self.program = list(program)
        self.apps = [os.fspath(app) for app in apps]
        self.extra_args = list(args)
        self.env = merged_env(env)
        self.cwd = cwd
        self.address = address
        self.requested_port = port
        self.ready_line = ready_line
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.attempts = attempts
        self.port: int | None = None
        self.command: list[str] = []
        self.returncode: int | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._lock = threading.Condition()
        self._combined: list[str] = []
        self._stdout: _Stream | None = None
        self._stderr: _Stream | None = None

    # -- life cycle -------------------------------------------------------------------------

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> ServerProcess:
        """Start the server and wait until it says it is running; retries on a port clash."""
        for attempt in range(1, self.attempts + 1):
            try:
                self._start_once()
                return self
            except _PortInUse:
                self.stop()
                if attempt == self.attempts or self.requested_port != 0:
                    raise
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")

    def _start_once(self) -> None:
        if self.requested_port is None or self._has_flag("--unix-socket"):
            self.port = None
        else:
            self.port = self.requested_port or free_port()
        self.command = self._build_command()
        with self._lock:
            self._combined.clear()
        self.returncode = None
        self._proc = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
        )
        self._stdout = _Stream(self._proc.stdout, self._combined, self._lock)
        self._stderr = _Stream(self._proc.stderr, self._combined, self._lock)
        self._wait_ready()

    def _build_command(self) -> list[str]:
        port = "" if self.port is None else str(self.port)
        command = [*self.program, *self.apps]
        if self.port is not None:
            command += ["--port", port]
        if self.address is not None and not self._has_flag("--address"):
            command += ["--address", self.address]
        return command + [arg.replace("{port}", port) for arg in self.extra_args]

    def _has_flag(self, flag: str) -> bool:
        return any(arg == flag or arg.startswith(flag + "=") for arg in self.extra_args)

    def _wait_ready(self) -> None:
        assert self._proc is not None and self._stderr is not None
        deadline = time.monotonic() + self.start_timeout
        with self._lock:
            while True:
                if any(self.ready_line in line for line in self._stderr.lines):
                    return
                exited = self._exited()
                if exited or time.monotonic() >= deadline:
                    break
                self._lock.wait(timeout=0.1)
        if exited:
            self._join_readers()
            log = self.logs()
            what = f"exited with code {self._exit_code()} before printing {self.ready_line!r}"
            if re.search(r"already in use|Address in use|EADDRINUSE", log, re.IGNORECASE):
                raise _PortInUse(self._describe(what, log))
        else:
            log = self.logs()
            what = f"did not print {self.ready_line!r} within {self.start_timeout:.0f} s"
        raise ServerStartError(self._describe(what, log))

    def _describe(self, what: str, log: str) -> str:
        return f"server {what}\ncommand: {self.command}\n--- output ---\n{log}--- end of output ---"

    def stop(self) -> int | None:
        """SIGTERM the server, SIGKILL it after ``stop_timeout``, sweep its process group."""
        proc = self._proc
        if proc is None:
            return self.returncode
        self.returncode = stop_group_leader(proc, self.stop_timeout, running=not self._exited())
        _wait_group_gone(proc.pid, self.stop_timeout)
        self._join_readers()
        self._proc = None
        return self.returncode

    def _exited(self) -> bool:
        # Never reap here: the PID must stay reserved until stop() has swept its process group.
        assert self._proc is not None
        if self._proc.returncode is not None:
            return True
        return os.waitid(os.P_PID, self._proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None

    def _exit_code(self) -> int | None:
        assert self._proc is not None
        if self._proc.returncode is not None:
            return self._proc.returncode
        info = os.waitid(os.P_PID, self._proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if info is None:
            return self._proc.returncode
        return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status

    def _join_readers(self) -> None:
        for stream in (self._stdout, self._stderr):
            if stream is not None:
                stream.join(timeout=5.0)

    # -- what tests use ---------------------------------------------------------------------

    @property
    def pid(self) -> int:
        assert self._proc is not None, "server is not running"
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and not self._exited()

    @property
    def base_url(self) -> str:
        assert self.port is not None, "server was started without a TCP port"
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def logs(self) -> str:
        """Everything the server wrote so far, stdout and stderr interleaved in arrival order."""
        with self._lock:
            return "".join(self._combined)

    def stderr(self) -> str:
        with self._lock:
            return "".join(self._stderr.lines) if self._stderr else ""

    def stdout(self) -> str:
        with self._lock:
            return "".join(self._stdout.lines) if self._stdout else ""

    def wait_for_log(self, pattern: str | re.Pattern[str], timeout: float = 10.0) -> re.Match[str]:
        """Wait until ``pattern`` (a regex) matches the combined output; return the match."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                match = regex.search("".join(self._combined))
                if match:
                    return match
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._lock.wait(timeout=min(remaining, 0.2))
        raise AssertionError(f"{regex.pattern!r} not in server output after {timeout:.0f} s:\n{self.logs()}")

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<ServerProcess {state} port={self.port} command={self.command!r}>"


def _wait_group_gone(pgid: int, timeout: float) -> None:
    """Wait until no process is left in group ``pgid`` (its killed workers are reaped by init)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)  # signal 0 only probes; it is harmless whoever holds the id
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.02)


class LogMark:
    """Where a server's log stood when a test step began; finds what it wrote after that."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.offset = len(server.logs())

    def new(self) -> str:
        return self.server.logs()[self.offset :]

    def wait_for(self, pattern: str, timeout: float = 10.0) -> str:
        """The first match of `pattern` in the new lines; fails after `timeout` or if the server died."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            text = self.new()
            match = regex.search(text)
            if match:
                return match.group(0)
            if time.monotonic() > deadline or not self.server.running:
                raise AssertionError(f"server logged nothing matching {pattern!r}; new lines:\n{text}")
            time.sleep(0.05)

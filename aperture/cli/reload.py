"""`--dev`: run the server in a child process and restart it when watched files change.

The supervisor polls modification times (every half second) of the app's files -
the script, or every file under a directory app - plus any `--dev FILES`, and
restarts the child on a change. The listening port stays the same across restarts
(with `--port 0` a free port is chosen once, up front), so open pages reconnect.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from aperture.config import Config

log = logging.getLogger("aperture.server")

POLL_SECONDS = 0.5


def watched_files(config: Config) -> list[Path]:
    paths: list[Path] = []
    for entry in (*config.apps, *(config.dev or ())):
        path = Path(entry).expanduser().resolve()
        if path.is_dir():
            paths.extend(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        elif path.exists():
            paths.append(path)
    return paths


def _snapshot(paths: Iterable[Path]) -> dict[Path, float]:
    stamps: dict[Path, float] = {}
    for path in paths:
        try:
            stamps[path] = path.stat().st_mtime
        except OSError:
            stamps[path] = -1.0
    return stamps


def _free_port(address: str | None) -> int:
    with socket.socket() as sock:
        sock.bind((address or "127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _child_argv(argv: Sequence[str], port: int) -> list[str]:
    args = list(argv[1:])
    return (
        [sys.executable, "-m", "aperture", *args, "--port", str(port)]
        if "--args" not in args
        else [
            sys.executable,
            "-m",
            "aperture",
            *args[: args.index("--args")],
            "--port",
            str(port),
            *args[args.index("--args") :],
        ]
    )


def supervise(config: Config, argv: Sequence[str]) -> int:
    port = config.port or _free_port(config.address)
    env = {**os.environ, "APERTURE_DEV_CHILD": "1"}
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping:
        files = watched_files(config)
        for path in files:
            log.info("Watching: %s", path)
        stamps = _snapshot(files)
        child = subprocess.Popen(_child_argv(argv, port), env=env)
        while not stopping and child.poll() is None:
            time.sleep(POLL_SECONDS)
            if _snapshot(watched_files(config)) != stamps:
                log.info("A watched file changed; restarting the server")
                break
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        elif not stopping:
            log.error(
                "The server exited with status %s; waiting for a change to restart it", child.returncode
            )
            while not stopping and _snapshot(watched_files(config)) == stamps:
                time.sleep(POLL_SECONDS)
    return 0

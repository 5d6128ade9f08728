"""`--dev`: run the server in a child process and restart it when watched files change.

The supervisor watches, through `watchfiles` (the operating system's change notifications), the
app's files - the script, or every file under a directory app - plus any `--dev FILES`, and
restarts the child once per burst of changes. It watches directories, never single files, so a
file that an editor replaces (a temporary file renamed over it) or deletes and writes afresh
is still seen; build and editor litter (`__pycache__`, `.git`, swap and backup files) is ignored.
The listening port stays the same across restarts (with `--port 0` a free port is chosen once,
up front), so open pages reconnect to the new server.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import watchfiles

from aperture.config import Config

log = logging.getLogger("aperture.server")

STEP_MS = 50  # watchfiles' own grouping of the events of one save
TICK_MS = 200  # how often the supervisor looks at the child while nothing changes
QUIET_SECONDS = 0.3  # a burst of changes ends after this long without another relevant one
LONGEST_BURST_SECONDS = 3.0  # even changes that never stop restart the server this often
STOP_SECONDS = 15
RETRY_SECONDS = 0.5
MAX_LOGGED_CHANGES = 10

IGNORED_DIRS = frozenset(watchfiles.DefaultFilter.ignore_dirs)
IGNORED_NAMES = tuple(re.compile(p) for p in watchfiles.DefaultFilter.ignore_entity_patterns)


def _ignored(relative: Path) -> bool:
    return any(part in IGNORED_DIRS for part in relative.parts) or any(
        pattern.search(relative.name) for pattern in IGNORED_NAMES
    )


def _existing_ancestor(path: Path) -> Path:
    for parent in path.parents:
        if parent.is_dir():
            return parent
    return Path(path.anchor)


@dataclass(frozen=True)
class WatchSet:
    """What `--dev` watches: whole trees (directories) and single files, as they are right now.

    Called with a change, it tells whether the change counts: a watched file, anything not ignored
    inside a tree, or a directory on the way to either (so a missing one is noticed when it appears).
    """

    trees: tuple[Path, ...]
    files: frozenset[Path]

    @classmethod
    def of(cls, config: Config) -> WatchSet:
        entries = [Path(entry).expanduser().resolve() for entry in (*config.apps, *(config.dev or ()))]
        return cls(
            trees=tuple(path for path in entries if path.is_dir()),
            files=frozenset(path for path in entries if not path.is_dir()),
        )

    def _walk(self, tree: Path) -> Iterator[tuple[Path, list[str]]]:
        for root, dirs, names in os.walk(tree):
            dirs[:] = sorted(d for d in dirs if d not in IGNORED_DIRS)
            yield Path(root), sorted(names)

    def directories(self) -> list[Path]:
        """Directories to watch, each on its own (not recursively): ignored ones are never entered."""
        found = {root for tree in self.trees for root, _ in self._walk(tree)}
        found.update(_existing_ancestor(path) for path in (*self.trees, *self.files))
        return sorted(found)

    def listed_files(self) -> list[Path]:
        """The files a restart would pick up, for the `Watching:` lines."""
        listed = [
            root / name
            for tree in self.trees
            for root, names in self._walk(tree)
            for name in names
            if not _ignored((root / name).relative_to(tree))
        ]
        return listed + sorted(path for path in self.files if path.exists())

    def __call__(self, change: watchfiles.Change, raw_path: str) -> bool:
        path = Path(raw_path)
        if path in self.files:
            return True
        for tree in self.trees:
            if path == tree or tree in path.parents:
                return not _ignored(path.relative_to(tree))
        return any(path in watched.parents for watched in (*self.trees, *self.files))


class _Stop:
    """Set by SIGTERM/SIGINT; watchfiles asks `is_set()` between steps, so watching ends promptly."""

    def __init__(self) -> None:
        self._set = False

    def set(self, signum: int, frame: object) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


def _free_port(address: str | None) -> int:
    with socket.socket() as sock:
        sock.bind((address or "127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _child_argv(argv: Sequence[str], port: int) -> list[str]:
    args = list(argv[1:])
    split = args.index("--args") if "--args" in args else len(args)
    return [sys.executable, "-m", "aperture", *args[:split], "--port", str(port), *args[split:]]


def _log_changes(changes: set[tuple[watchfiles.Change, str]]) -> None:
    ordered = sorted(changes, key=lambda change: change[1])
    for kind, path in ordered[:MAX_LOGGED_CHANGES]:
        log.info("Changed (%s): %s", kind.name, path)
    if len(ordered) > MAX_LOGGED_CHANGES:
        log.info("... and %d more changes", len(ordered) - MAX_LOGGED_CHANGES)
    log.info("A watched file changed; restarting the server")


def _stop_child(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


Changes = Generator[set[tuple[watchfiles.Change, str]], None, None]


def _start_watching(watched: WatchSet, stop: _Stop, polling: bool) -> Changes | None:
    """Watch the directories of `watched`; None if stopped first. Raises OSError if it cannot.

    Every batch watchfiles gathers is filtered by the caller rather than by watchfiles, and a
    batch comes at least every tick even while nothing changes, so neither churn in ignored
    files nor a quiet spell keeps the supervisor from seeing the child exit or a burst end.
    """
    changes = watchfiles.watch(
        *watched.directories(),
        watch_filter=None,
        step=STEP_MS,
        stop_event=stop,
        rust_timeout=TICK_MS,
        yield_on_timeout=True,
        recursive=False,
        raise_interrupt=False,
        force_polling=True if polling else None,  # None: watchfiles decides (it polls on WSL)
        ignore_permission_denied=polling,
    )
    # The first batch comes once the watches are set up: the child must start after that, and
    # reads whatever changed in the meantime anyway.
    return changes if next(changes, None) is not None else None


def _serve_until_change(
    command: list[str], env: dict[str, str], watched: WatchSet, changes: Changes, stop: _Stop
) -> None:
    """Run one child until a burst of relevant changes, or the end of `changes`; then stop it."""
    child = subprocess.Popen(command, env=env)
    burst: set[tuple[watchfiles.Change, str]] = set()
    first = last = 0.0
    reported = False
    try:
        for batch in changes:
            now = time.monotonic()
            relevant = {change for change in batch if watched(*change)}
            if relevant:
                first, last = (first if burst else now), now
                burst |= relevant
            if burst and (now - last >= QUIET_SECONDS or now - first >= LONGEST_BURST_SECONDS):
                _log_changes(burst)
                return
            if not reported and child.poll() is not None and not stop.is_set():
                reported = True
                log.error(
                    "The server exited with status %s; waiting for a change to restart it", child.returncode
                )
    finally:
        _stop_child(child)


def supervise(config: Config, argv: Sequence[str]) -> int:
    port = config.port or _free_port(config.address)
    command = _child_argv(argv, port)
    env = {**os.environ, "APERTURE_DEV_CHILD": "1"}
    stop = _Stop()
    signal.signal(signal.SIGTERM, stop.set)
    signal.signal(signal.SIGINT, stop.set)
    polling = False
    while not stop.is_set():
        watched = WatchSet.of(config)
        for path in watched.listed_files():
            log.info("Watching: %s", path)
        try:
            changes = _start_watching(watched, stop, polling)
        except FileNotFoundError as exc:  # a directory vanished between listing and watching
            log.warning("Cannot watch the app's files (%s); listing them again", exc)
            time.sleep(RETRY_SECONDS)
            continue
        except OSError as exc:  # e.g. the limit on inotify watches (fs.inotify.max_user_watches)
            if polling:
                log.error("Cannot watch the app's files (%s)", exc)
                return 1
            log.warning(
                "Cannot watch the app's files with change notifications (%s); polling them instead", exc
            )
            polling = True
            continue
        if changes is None:
            break
        with contextlib.closing(changes):
            _serve_until_change(command, env, watched, changes, stop)
    return 0

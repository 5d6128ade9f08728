"""What else the machine was doing during a run (so a reader can tell noise from signal).

`LoadMonitor` samples /proc every `interval` seconds in a thread: busy jiffies of each CPU
(/proc/stat) and utime+stime of every process. CPU time of the load generator (this process and
its descendants, minus servers) and of the servers (registered PIDs and their descendants) is
subtracted from the machine total; the rest is "other". All CPU figures are in percent of ONE core
(so 2 cores fully busy = 200 %). Also records /proc/loadavg at start and end.
"""

from __future__ import annotations

import contextlib
import os
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HZ = os.sysconf("SC_CLK_TCK")


def _read_procs() -> dict[int, tuple[int, int, int]]:
    """pid -> (ppid, utime+stime ticks, start time)."""
    out: dict[int, tuple[int, int, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        rest = raw[raw.rfind(b")") + 2 :].split()
        out[int(entry.name)] = (int(rest[1]), int(rest[11]) + int(rest[12]), int(rest[19]))
    return out


def _tree(procs: dict[int, tuple[int, int, int]], roots: set[int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    seen, stack = set(), [r for r in roots if r in procs]
    while stack:
        pid = stack.pop()
        if pid not in seen:
            seen.add(pid)
            stack.extend(children.get(pid, ()))
    return seen


def descendants(pid: int) -> dict[int, int]:
    """Descendants of `pid` (not itself) -> their start time (to re-check identity before killing)."""
    procs = _read_procs()
    return {p: procs[p][2] for p in _tree(procs, {pid}) if p != pid}


def tree_ticks(pid: int) -> int:
    """utime + stime so far of `pid` and its live descendants."""
    procs = _read_procs()
    return sum(procs[p][1] for p in _tree(procs, {pid}))


def machine_busy_ticks() -> int:
    """Busy ticks of all CPUs so far (minus idle and iowait)."""
    return _cpu_busy()[0]


def cpu_ticks(pid: int) -> int:
    """utime + stime of one process so far (0 if it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return 0
    rest = raw[raw.rfind(b")") + 2 :].split()
    return int(rest[11]) + int(rest[12])


def same_process(pid: int, start_time: int) -> bool:
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return int(raw[raw.rfind(b")") + 2 :].split()[19]) == start_time


def _cpu_busy() -> tuple[int, dict[str, int]]:
    """(total busy ticks over all CPUs, per-cpu busy ticks)."""
    total, per = 0, {}
    for line in Path("/proc/stat").read_text().splitlines():
        if not line.startswith("cpu"):
            break
        f = line.split()
        vals = [int(v) for v in f[1:9]]
        busy = sum(vals) - vals[3] - vals[4]  # minus idle and iowait
        if f[0] == "cpu":
            total = busy
        else:
            per[f[0]] = busy
    return total, per


def _reaped_ticks() -> int:
    """CPU ticks of all children this process has reaped so far (and of their reaped children)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return int((ru.ru_utime + ru.ru_stime) * HZ)


def loadavg() -> list[float]:
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]


@dataclass
class LoadReport:
    wall_s: float
    machine_pct: float  # all CPUs, % of one core
    server_pct: float
    loadgen_pct: float
    other_pct: float
    other_max_pct: float  # worst sampling interval
    per_cpu_pct: dict[str, float]
    loadavg_start: list[float]
    loadavg_end: list[float]

    def as_dict(self) -> dict[str, object]:
        return {k: (round(v, 1) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


class LoadMonitor:
    def __init__(self, server_pids: Callable[[], set[int]], interval: float = 0.5) -> None:
        self._server_pids = server_pids
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._me = os.getpid()
        self._acc = {"machine": 0, "server": 0, "loadgen": 0, "other": 0}
        self._other_max = 0.0
        self._lock = threading.Lock()
        self._gone_ticks = 0  # last-seen ticks of exited processes not yet in RUSAGE_CHILDREN
        self._gone_server = False

    def __enter__(self) -> LoadMonitor:
        self._la0 = loadavg()
        self._t0 = time.monotonic()
        self._cpu0 = _cpu_busy()
        self._prev = self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._step()
        self.report = self._report()

    def _sample(self) -> tuple[float, int, dict[int, tuple[int, int, int]], set[int], set[int], int]:
        procs = _read_procs()
        servers = _tree(procs, self._server_pids())
        ours = _tree(procs, {self._me}) | servers
        return time.monotonic(), _cpu_busy()[0], procs, servers, ours, _reaped_ticks()

    def _step(self) -> None:
        t1, busy1, procs1, servers, ours, reaped1 = cur = self._sample()
        t0, busy0, procs0, servers0, ours0, reaped0 = self._prev
        d_machine = busy1 - busy0
        d_server = d_ours = 0
        for pid in ours:
            now = procs1[pid][1]
            before = procs0.get(pid)
            delta = now - before[1] if before and before[2] == procs1[pid][2] else now
            d_ours += delta
            if pid in servers:
                d_server += delta
        # Children that exited and were reaped since the last sample: their last ticks are only in
        # this process's RUSAGE_CHILDREN (e.g. a server's shutdown); count what was not seen yet.
        # A grandchild (a `--num-procs` worker) is reaped by its parent and reaches RUSAGE_CHILDREN
        # only with that parent, maybe samples later: the ticks already counted of every exited
        # process wait in `_gone_ticks` until then.
        gone = [p for p in ours0 if p not in procs1 or procs1[p][2] != procs0[p][2]]
        self._gone_ticks += sum(procs0[p][1] for p in gone)
        self._gone_server |= any(p in servers0 for p in gone)
        d_reaped = reaped1 - reaped0
        if d_reaped > 0:
            unseen = max(0, d_reaped - self._gone_ticks)
            self._gone_ticks = max(0, self._gone_ticks - d_reaped)
            d_ours += unseen
            if self._gone_server:
                d_server += unseen
            if not self._gone_ticks:
                self._gone_server = False
        d_other = max(0, d_machine - d_ours)
        with self._lock:
            self._acc["machine"] += d_machine
            self._acc["server"] += d_server
            self._acc["loadgen"] += d_ours - d_server
            self._acc["other"] += d_other
            if t1 > t0:
                self._other_max = max(self._other_max, 100.0 * d_other / HZ / (t1 - t0))
        self._prev = cur

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            with contextlib.suppress(Exception):
                self._step()

    def _report(self) -> LoadReport:
        wall = max(1e-6, time.monotonic() - self._t0)
        busy1 = _cpu_busy()
        pct = {k: 100.0 * v / HZ / wall for k, v in self._acc.items()}
        per = {c: 100.0 * (busy1[1][c] - self._cpu0[1].get(c, 0)) / HZ / wall for c in busy1[1]}
        return LoadReport(
            wall, pct["machine"], pct["server"], pct["loadgen"], pct["other"], self._other_max, per,
            self._la0, loadavg(),
        )  # fmt: skip


def other_load_pct(interval: float = 1.0) -> float:
    """CPU used over `interval` by processes outside this process tree, in % of one core."""
    me = os.getpid()
    procs0, busy0, t0 = _read_procs(), _cpu_busy()[0], time.monotonic()
    time.sleep(interval)
    procs1, busy1, t1 = _read_procs(), _cpu_busy()[0], time.monotonic()
    ours = 0
    for pid in _tree(procs1, {me}):
        before = procs0.get(pid)
        ours += procs1[pid][1] - (before[1] if before and before[2] == procs1[pid][2] else 0)
    return max(0.0, 100.0 * (busy1 - busy0 - ours) / HZ / (t1 - t0))


def wait_for_quiet(max_wait: float, threshold_pct: float) -> tuple[float, float]:
    """Wait (at most `max_wait` s) until other processes use less than `threshold_pct` of a core.

    Returns (seconds waited, other load in the last 1 s sample).
    """
    t0 = time.monotonic()
    other = other_load_pct()
    while other >= threshold_pct and time.monotonic() - t0 < max_wait:
        other = other_load_pct()
    return round(time.monotonic() - t0, 1), round(other, 1)

"""S12 machine level: both servers with `--num-procs 2` on the whole (2-core) machine.

Each server runs the `sliders_counted` app (S1's sliders app; every run of it appends a line to
$BENCH_COUNTER_FILE) with `--num-procs 2`, allowed on every CPU (`taskset -c <all>`), and the load
generator is unpinned for the run as well (it shares the machine, as it would in production with a
proxy). 32 virtual users loop S1's page view (GET page on a keep-alive connection, websocket with
the token, ACK, PULL-DOC, close) without pause, measured as S1's throughput: page views/s between
reaping passes (Little's law over the window before the first unused-session check, 1-5 s; full
3-15 s) and with reaping (views completed in 2 (full: 3) whole 17 s check periods from 18 s on
/ the window's length; `--param s12_reaping_periods=N`, 0 skips it). App runs per page view = lines
added to the counter file during the whole loop / page views attempted in it (completed or failed;
with `bokeh serve --num-procs 2`, a websocket that lands on the other process than its page GET runs
the app again).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.loadgen.client import Target, open_session_and_pull
from bench.loadgen.http import HTTPConnection
from bench.servers import Slot

from .common import Config, Goal, Metric, Outcome, Scenario, windowed_load

APP = "sliders_counted"
PROCS = 2
USERS = 32


@contextlib.contextmanager
def unpinned() -> Iterator[str]:
    """Let this process (the load generator) run on every allowed CPU for a while; yields the CPU
    list (for taskset). The pinning of bench/run.py is restored afterwards."""
    before = os.sched_getaffinity(0)
    allowed = set(range(os.cpu_count() or 1))
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, allowed)
    try:
        yield ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    finally:
        os.sched_setaffinity(0, before)


def count_runs(path: Path) -> tuple[int, dict[str, int]]:
    """Lines in the counter file, and per PID."""
    by_pid: dict[str, int] = {}
    lines = path.read_text().splitlines() if path.exists() else []
    for line in lines:
        pid = line.split()[0]
        by_pid[pid] = by_pid.get(pid, 0) + 1
    return len(lines), by_pid


async def _view(target: Target, http: HTTPConnection) -> None:
    sess = await open_session_and_pull(target, http)
    await sess.close()


async def run(slot: Slot, cfg: Config) -> Outcome:
    out = Outcome()
    periods = int(cfg.param("s12_reaping_periods", cfg.q(2, 3)))
    tmp = Path(tempfile.mkdtemp(prefix="bench-s12-"))
    counter = tmp / "runs.txt"
    try:
        with unpinned() as cpus:
            machine = dataclasses.replace(slot, cpu=cpus)
            args = ["--num-procs", str(PROCS)]
            async with machine.serve([APP], args, env={"BENCH_COUNTER_FILE": str(counter)}) as srv:
                ready = time.perf_counter()
                target = srv.target(APP)
                base, _ = count_runs(counter)
                conns = [HTTPConnection(target.host, target.port) for _ in range(USERS)]
                try:
                    w = await windowed_load(
                        srv,
                        conns,
                        lambda h, _i: _view(target, h),
                        cfg.q(1.0, 3.0),
                        cfg.q(4.0, 12.0),
                        periods,
                        ready,
                    )
                finally:
                    for h in conns:
                        await h.close()
                await asyncio.sleep(0.2)  # the last runs' lines
                runs, by_pid = count_runs(counter)
        runs -= base
        views = w.loop.completed
        attempts = views + len(w.loop.errors)  # a view that failed (e.g. timed out) may have run the app
        out.metrics["rate_32"] = round(w.steady["rate_little"], 2)
        out.metrics["cpu_ms_32"] = w.steady["cpu_ms"]
        if w.reaping is not None:
            out.metrics["rate_32_reaping"] = round(w.reaping["rate"], 2)
            out.metrics["cpu_ms_32_reaping"] = w.reaping["cpu_ms"]
            out.info["reaping_n"] = w.reaping["n"]
            out.info["reaping_max_ms"] = w.reaping["max_ms"]
        if attempts:
            out.metrics["runs_per_view"] = round(runs / attempts, 3)
        out.info.update(
            cpus=cpus,
            views=views,
            attempts=attempts,
            runs=runs,
            runs_before=base,
            runs_by_pid=by_pid,
            steady_n=w.steady["n"],
            steady_rate=round(w.steady["rate"], 2),
            errors=len(w.loop.errors),
            first_error=w.loop.errors[0] if w.loop.errors else None,
            windows_s=w.windows_s,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


SCENARIO = Scenario(
    name="S12",
    title="machine level (--num-procs 2, both cores)",
    measures=__doc__.split("\n\n")[0],
    metrics=(
        Metric(
            "rate_32",
            "sliders: page views/s, 32 users, --num-procs 2, between reaping passes",
            "1/s",
            "higher",
            Goal("ratio", ">=", 3.0),
        ),
        Metric("cpu_ms_32", "server CPU per page view (all processes), between passes", "ms", "lower"),
        Metric(
            "rate_32_reaping",
            "sliders: page views/s, 32 users, --num-procs 2, with reaping (2-3 × 17 s)",
            "1/s",
            "higher",
            Goal("ratio", ">=", 3.0),
        ),
        Metric("cpu_ms_32_reaping", "server CPU per page view (all processes), with reaping", "ms", "lower"),
        Metric(
            "runs_per_view", "app runs per page view, --num-procs 2", "runs", "lower", Goal("abs", "<=", 1.0)
        ),
    ),
    run=run,
    budget_s=(150, 220),
)

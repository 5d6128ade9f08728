"""S1 session start: GET page -> websocket (token subprotocol) -> ACK -> PULL-DOC -> close.

For the `hello` app (one Div) and the `sliders` app (plot + 4 sliders, 200 points): latency at 1
virtual user on a fresh server (median of GET..PULL-DOC-REPLY, close not included); then, on another
fresh server, 32 virtual users looping back to back without pause, measured in two windows of that
one continuous load, because both servers discard unused sessions in passes every 17 s (sessions
closed 15 s before), and `bokeh serve` runs a full `gc.collect()` and a `gc.get_referrers` scan for
every session it discards, which costs more the more sessions are alive:
(1) *between reaping passes*: from 1 s (full: 3 s) to 5 s (15 s) after the server started, before
its first check: page views per second = 32 / mean loop time (Little's law; the plain count is in
the info as `*_32u_rate`) and the server's CPU time per page view in that window (process tree and
its Redis, if any);
(2) *with reaping*: the views completed in the 2 (full: 3) whole check periods from 18 s on
(`--param s1_reaping_periods=N`, 0 skips it) / the window's length, and CPU per view there.
The closing handshake is part of each loop. Each user keeps one keep-alive HTTP connection for its
page GETs, as a browser would, and opens a new websocket per view.
"""

from __future__ import annotations

import time

from bench.loadgen.client import Target, open_session_and_pull
from bench.loadgen.http import HTTPConnection
from bench.servers import Slot

from .common import (
    NOT_WORSE_HIGHER,
    Config,
    Goal,
    Metric,
    Outcome,
    Scenario,
    WindowedLoad,
    ms,
    percentile,
    windowed_load,
)

APPS = ("hello", "sliders")
RATE_GOAL = {"hello": 2.0, "sliders": 2.5}  # page views/s between reaping passes, × bokeh serve


async def _view(target: Target, http: HTTPConnection) -> float:
    t0 = time.perf_counter()
    sess = await open_session_and_pull(target, http)
    dt = time.perf_counter() - t0
    await sess.close()
    return dt


async def throughput(
    slot: Slot, app: str, users: int, warmup: float, steady: float, periods: int
) -> WindowedLoad:
    """32 (`users`) users looping page views on a fresh server, measured around its reaping passes."""
    async with slot.serve([app]) as srv:
        ready = time.perf_counter()
        target = srv.target(app)
        conns = [HTTPConnection(target.host, target.port) for _ in range(users)]
        try:
            return await windowed_load(
                srv, conns, lambda h, _i: _view(target, h), warmup, steady, periods, ready
            )
        finally:
            for h in conns:
                await h.close()


async def run(slot: Slot, cfg: Config) -> Outcome:
    out = Outcome()
    periods = 0 if slot.name == "ceiling" else int(cfg.param("s1_reaping_periods", cfg.q(2, 3)))
    for app in APPS:
        async with slot.serve([app]) as srv:
            target = srv.target(app)
            http = HTTPConnection(target.host, target.port)
            for _ in range(3):  # warm-up (first session imports, JIT-less caches, ...)
                await _view(target, http)
            lat = [await _view(target, http) for _ in range(cfg.q(30, 100))]
            await http.close()
            out.metrics[f"{app}_latency_ms"] = ms(percentile(lat, 50))
            out.info[f"{app}_latency_p90_ms"] = ms(percentile(lat, 90))

        w = await throughput(slot, app, 32, cfg.q(1.0, 3.0), cfg.q(4.0, 12.0), periods)
        steady, reaping = w.steady, w.reaping
        out.metrics[f"{app}_rate_32"] = round(steady["rate_little"], 2)
        out.metrics[f"{app}_cpu_ms_32"] = steady["cpu_ms"]
        out.info[f"{app}_32u_redis_cpu_ms"] = steady["redis_cpu_ms"]
        out.info[f"{app}_32u_rate"] = round(steady["rate"], 2)
        out.info[f"{app}_32u_n"] = steady["n"]
        out.info[f"{app}_32u_p50_ms"] = steady["p50_ms"]
        out.info[f"{app}_32u_errors"] = len(w.loop.errors)
        out.info[f"{app}_32u_first_error"] = w.loop.errors[0] if w.loop.errors else None
        out.info[f"{app}_32u_windows_s"] = w.windows_s
        if reaping is not None:
            out.metrics[f"{app}_rate_32_reaping"] = round(reaping["rate"], 2)
            out.metrics[f"{app}_cpu_ms_32_reaping"] = reaping["cpu_ms"]
            out.info[f"{app}_32u_reaping_n"] = reaping["n"]
            out.info[f"{app}_32u_reaping_max_ms"] = reaping["max_ms"]
    return out


def _metrics(app: str) -> tuple[Metric, ...]:
    return (
        Metric(
            f"{app}_latency_ms",
            f"{app}: page→PULL-DOC latency, 1 user",
            "ms",
            "lower",
            Goal("abs", "<=", 10.0),
        ),
        Metric(
            f"{app}_rate_32",
            f"{app}: page views/s, 32 users, between reaping passes",
            "1/s",
            "higher",
            Goal("ratio", ">=", RATE_GOAL[app]),
            ceiling=True,
        ),
        Metric(
            f"{app}_cpu_ms_32", f"{app}: server CPU per page view, 32 users, between passes", "ms", "lower"
        ),
        Metric(
            f"{app}_rate_32_reaping",
            f"{app}: page views/s, 32 users, with reaping (2-3 × 17 s periods)",
            "1/s",
            "higher",
            NOT_WORSE_HIGHER,
        ),
        Metric(f"{app}_cpu_ms_32_reaping", f"{app}: server CPU per page view, with reaping", "ms", "lower"),
    )


SCENARIO = Scenario(
    name="S1",
    title="session start",
    measures=__doc__.split("\n\n")[0],
    metrics=_metrics("hello") + _metrics("sliders"),
    run=run,
    budget_s=(300, 480),
    ceiling_ok=True,
)

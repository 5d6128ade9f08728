"""S10 clean-up stalls: round-trip p99 of interacting sessions while the server reaps hundreds of
unused sessions.

Server flags `--unused-session-lifetime 2000 --check-unused-sessions 500` (ms). Probe sessions
(sliders) stay connected; a few hundred more sessions are opened (page, websocket, PULL-DOC) and
held. Baseline: probes' round trips (20 ms think time) for a few seconds. Then all held websockets
are closed at once; the probes keep starting round trips for lifetime + check interval + 3 s while
the server discards the sessions, and round trips started in that window are awaited to the end
(up to 90 s), so a stall is measured in full. Metric: the probes' p99 over that window
(`baseline_p99_ms`, before the close, is reported for comparison; `reap_max_ms` is the longest stall).
"""

from __future__ import annotations

import asyncio

from bench.servers import Slot

from .common import (
    Config,
    Goal,
    Metric,
    Outcome,
    Scenario,
    close_all,
    closed_loop,
    ms,
    open_many,
    percentile,
)
from .s2_interaction import make_users, user_step

LIFETIME_MS, CHECK_MS = 2000, 500
WINDOW_S = LIFETIME_MS / 1000 + CHECK_MS / 1000 + 3.0  # probes start round trips during this window
STALL_CAP_S = 90.0  # a round trip started in the window is awaited this long at most


async def run(slot: Slot, cfg: Config) -> Outcome:
    out = Outcome()
    args = ["--unused-session-lifetime", str(LIFETIME_MS), "--check-unused-sessions", str(CHECK_MS)]
    async with slot.serve(["sliders"], args) as srv:
        target = srv.target("sliders")
        probes = make_users(await open_many(target, cfg.q(8, 16), timeout=STALL_CAP_S))
        held = await open_many(target, cfg.q(200, 300), concurrency=8)
        base = await closed_loop(probes, user_step, duration=cfg.q(3.0, 6.0), warmup=1.0, think=0.02)
        rss_held = srv.rss_kib()
        reap = asyncio.create_task(
            closed_loop(
                probes, user_step, duration=WINDOW_S, think=0.02, count="started", step_timeout=STALL_CAP_S
            )
        )
        await close_all(held, concurrency=64)
        res = await reap
        out.metrics["reap_p99_ms"] = ms(percentile(res.latencies, 99))
        out.info["baseline_p99_ms"] = ms(percentile(base.latencies, 99))
        out.info.update(res.summary("reap_"))
        if res.censored:
            out.info["lower_bound_metrics"] = ["reap_p99_ms"]
        out.info.update(
            sessions_reaped=len(held),
            rss_held_mib=round(rss_held / 1024, 1),
            rss_after_mib=round(srv.rss_kib() / 1024, 1),
        )
        await close_all([p.sess for p in probes])
    return out


SCENARIO = Scenario(
    name="S10",
    title="clean-up stalls",
    measures=__doc__.split("\n\n")[0],
    metrics=(
        Metric(
            "reap_p99_ms",
            "interacting sessions' round-trip p99 while 200-300 sessions are reaped",
            "ms",
            "lower",
            Goal("abs", "<=", 50.0),
        ),
    ),
    run=run,
    budget_s=(150, 300),
)

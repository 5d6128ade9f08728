"""S9 isolation: other sessions' round trips while one session's Python callback blocks for 1 s.

One server serves `blocking` and `sliders`. Probe sessions (sliders) do slider round trips (send ->
data patch -> OK) with 20 ms think time, while a `blocking` session repeatedly moves a slider whose
callback blocks 1 s (`sleep`: time.sleep; `cpu`: busy loop), waits for its OK, pauses 0.5 s, and so
on. Metric: the probes' round-trip p99 during that window, per variant (a server that runs every
callback on one event loop shows ≈1000 ms).
"""

from __future__ import annotations

import asyncio
import time

from bench.loadgen.client import BokehSession
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


async def blocker(sess: BokehSession, slider_id: str, until: float) -> tuple[int, list[float]]:
    """Trigger the blocking callback back to back (with 0.5 s pauses) until `until`."""
    n, durations = 0, []
    while time.perf_counter() < until - 1.0:
        t0 = time.perf_counter()
        await sess.set_value(slider_id, "value", n + 1)
        durations.append(time.perf_counter() - t0)
        n += 1
        await asyncio.sleep(0.5)
    return n, durations


async def run(slot: Slot, cfg: Config) -> Outcome:
    out = Outcome()
    duration = cfg.q(5.0, 15.0)
    async with slot.serve(["blocking", "sliders"]) as srv:
        probes = make_users(await open_many(srv.target("sliders"), cfg.q(8, 16), timeout=20.0))
        blk = (await open_many(srv.target("blocking"), 1))[0]
        ids = blk.model_ids("Slider")
        for variant in ("sleep", "cpu"):
            await closed_loop(probes, user_step, duration=1.0, think=0.02)  # settle
            loop = asyncio.create_task(
                closed_loop(
                    probes, user_step, duration=duration, think=0.02, count="started", step_timeout=20.0
                )
            )
            blocks, dur = await blocker(blk, ids[variant], time.perf_counter() + duration)
            res = await loop
            out.metrics[f"{variant}_p99_ms"] = ms(percentile(res.latencies, 99))
            out.info.update(res.summary(f"{variant}_"))
            out.info[f"{variant}_blocks"] = blocks
            out.info[f"{variant}_block_rtt_ms"] = ms(percentile(dur, 50)) if dur else None
        await close_all([p.sess for p in probes] + [blk])
    return out


SCENARIO = Scenario(
    name="S9",
    title="isolation from a blocking callback",
    measures=__doc__.split("\n\n")[0],
    metrics=(
        Metric(
            "sleep_p99_ms",
            "other sessions' round-trip p99, callback sleeps 1 s",
            "ms",
            "lower",
            Goal("abs", "<=", 50.0),
        ),
        Metric(
            "cpu_p99_ms",
            "other sessions' round-trip p99, callback spins 1 s",
            "ms",
            "lower",
            Goal("abs", "<=", 50.0),
        ),
    ),
    run=run,
    budget_s=(60, 150),
)

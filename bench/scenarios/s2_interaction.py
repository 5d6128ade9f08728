"""S2 interaction: a session changes a slider (PATCH-DOC ModelChanged) and waits for the server's
ColumnDataChanged PATCH-DOC and the OK.

Round trip (send -> OK, the data patch arrives before the OK) at 1 session: median over 50 (full:
200) sequential changes after 5 warm-up ones. Throughput: 50 sessions, each changing its slider back
to back; completed round trips per second (50 / mean round trip, Little's law; the completion count
is in the info), and the server's CPU time per round trip in that loop (server process tree and its
Redis, if any; informational). `missing_patches` counts round trips whose OK came without a data patch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

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
    loop_with_cpu,
    ms,
    open_many,
    percentile,
    slider_roundtrip,
)


@dataclass
class _User:
    sess: BokehSession
    slider: str
    missing: int = 0


def make_users(sessions: list[BokehSession], slider: str = "amplitude") -> list[_User]:
    return [_User(s, s.model_ids("Slider").get(slider, "")) for s in sessions]


async def user_step(u: _User, i: int) -> None:
    if await slider_roundtrip(u.sess, u.slider, i) == 0:
        u.missing += 1


async def run(slot: Slot, cfg: Config) -> Outcome:
    out = Outcome()
    async with slot.serve(["sliders"]) as srv:
        target = srv.target("sliders")
        one = make_users(await open_many(target, 1))
        for i in range(5):  # warm-up
            await user_step(one[0], i)
        lat = []
        deadline = time.monotonic() + cfg.q(10.0, 30.0)
        for i in range(5, 5 + cfg.q(50, 200)):
            if time.monotonic() > deadline:
                break
            t0 = time.perf_counter()
            await user_step(one[0], i)
            lat.append(time.perf_counter() - t0)
        out.metrics["rtt_ms_1"] = ms(percentile(lat, 50))
        out.info.update(rtt_1_n=len(lat), rtt_1_p90_ms=ms(percentile(lat, 90)))
        await close_all([u.sess for u in one])

        sessions = await open_many(target, 50, concurrency=4)
        users = make_users(sessions)
        res, cpu, redis_cpu = await loop_with_cpu(
            srv, closed_loop(users, user_step, duration=cfg.q(4.0, 15.0), warmup=cfg.q(1.0, 3.0))
        )
        out.metrics["rtt_per_s_50"] = round(res.rate_little, 2)
        out.metrics["cpu_us_per_rt_50"] = round(cpu * 1e6, 1)
        out.info["50s_redis_cpu_us"] = round(redis_cpu * 1e6, 1)
        out.info.update(res.summary("50s_"))
        out.info["sessions_opened"] = len(sessions)
        out.info["missing_patches"] = sum(u.missing for u in one + users)
        await close_all(sessions)
    return out


SCENARIO = Scenario(
    name="S2",
    title="interaction",
    measures=__doc__.split("\n\n")[0],
    metrics=(
        Metric(
            "rtt_ms_1", "slider→data patch→OK round trip, 1 session", "ms", "lower", Goal("abs", "<=", 2.0)
        ),
        Metric(
            "rtt_per_s_50",
            "round trips/s, 50 sessions",
            "1/s",
            "higher",
            Goal("ratio", ">=", 2.5),
            ceiling=True,
        ),
        Metric("cpu_us_per_rt_50", "server CPU per round trip, 50 sessions", "µs", "lower"),
    ),
    run=run,
    budget_s=(60, 180),
    ceiling_ok=True,
)

"""S4 memory: server RSS growth per idle `sliders` session.

Warm up with 5 open sessions, read the RSS of the server process tree (VmRSS summed), open 200
more sessions and keep their websockets open and idle, wait 2 s, read the RSS again:
(RSS_after - RSS_before) / 200.
"""

from __future__ import annotations

import asyncio

from bench.servers import Slot

from .common import Config, Goal, Metric, Outcome, Scenario, close_all, open_many

N = 200


async def run(slot: Slot, cfg: Config) -> Outcome:
    out = Outcome()
    async with slot.serve(["sliders"]) as srv:
        target = srv.target("sliders")
        warm = await open_many(target, 5)
        await asyncio.sleep(1.0)
        rss0 = srv.rss_kib()
        sessions = await open_many(target, N, concurrency=4)
        await asyncio.sleep(2.0)
        rss1 = srv.rss_kib()
        out.metrics["rss_kib_per_session"] = round((rss1 - rss0) / max(1, len(sessions)), 1)
        out.info.update(
            rss_before_mib=round(rss0 / 1024, 1), rss_after_mib=round(rss1 / 1024, 1), sessions=len(sessions)
        )
        await close_all(sessions + warm)
    return out


SCENARIO = Scenario(
    name="S4",
    title="memory per session",
    measures=__doc__.split("\n\n")[0],
    metrics=(
        Metric(
            "rss_kib_per_session",
            "RSS growth per idle sliders session (200 sessions)",
            "KiB",
            "lower",
            Goal("ratio", "<=", 0.9),
        ),
    ),
    run=run,
    budget_s=(90, 180),
)

"""S3 streaming fan-out: sessions of the `stream` app, whose periodic callback streams 10 points
every 100 ms, i.e. ideally 10 PATCH-DOC/s per session.

Sessions are added in steps (kept open, each with a reader counting PATCH-DOCs); after each step
and a short settle, delivered patches/s over a window are compared with the ideal (10 x sessions).
The saturation point is the largest session count still delivering >= 90 % of the ideal; the
ramp stops at the first step below 90 % (or at the last step / the time budget).
"""

from __future__ import annotations

import asyncio
import time

from bench.loadgen.client import BokehSession
from bench.servers import Slot

from .common import Config, Goal, Metric, Outcome, Scenario, close_all, open_many

TRACKING = 0.9


class _Counter:
    def __init__(self) -> None:
        self.patches = 0
        self.errors = 0

    async def read(self, sess: BokehSession) -> None:
        try:
            while True:
                msg = await sess.next_message()
                if msg.msgtype == "PATCH-DOC":
                    self.patches += 1
        except asyncio.CancelledError:
            raise
        except Exception:
            self.errors += 1


async def run(slot: Slot, cfg: Config) -> Outcome:
    out = Outcome()
    steps = cfg.q(
        [10, 50, 100, 200, 300, 400, 600],
        [10, 25, 50, 100, 150, 200, 250, 300, 400, 500, 600, 800, 1000, 1500, 2000],
    )
    window = cfg.q(2.5, 6.0)
    deadline = time.monotonic() + cfg.q(70, 200)
    counter = _Counter()
    sessions: list[BokehSession] = []
    readers: list[asyncio.Task[None]] = []
    table = []
    async with slot.serve(["stream"]) as srv:
        target = srv.target("stream")
        try:
            for n in steps:
                new = await open_many(target, n - len(sessions), concurrency=8, deadline=deadline)
                sessions += new
                readers += [asyncio.create_task(counter.read(s)) for s in new]
                if len(sessions) < n:
                    out.info["truncated"] = f"time budget hit while opening {n} sessions"
                    break
                await asyncio.sleep(cfg.q(0.5, 1.0))
                c0, t0 = counter.patches, time.perf_counter()
                await asyncio.sleep(window)
                rate = (counter.patches - c0) / (time.perf_counter() - t0)
                table.append({"sessions": n, "patches_per_s": round(rate, 1), "ideal": 10 * n})
                if rate < TRACKING * 10 * n or time.monotonic() > deadline:
                    break
        finally:
            for t in readers:
                t.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            await close_all(sessions)
    tracking = [r for r in table if r["patches_per_s"] >= TRACKING * r["ideal"]]
    out.metrics["saturation_sessions"] = float(max((r["sessions"] for r in tracking), default=0))
    out.metrics["max_patches_per_s"] = max((r["patches_per_s"] for r in table), default=0.0)
    out.info["steps"] = table
    out.info["reader_errors"] = counter.errors
    out.info["ramp_ended_tracking"] = ended = bool(table) and table[-1] in tracking
    if ended:
        out.info["lower_bound_metrics"] = ["saturation_sessions"]
    return out


SCENARIO = Scenario(
    name="S3",
    title="streaming fan-out",
    measures=__doc__.split("\n\n")[0],
    metrics=(
        Metric(
            "saturation_sessions",
            "sessions still getting ≥90% of 10 patches/s",
            "sessions",
            "higher",
            Goal("ratio", ">=", 2.0),
            ceiling=True,
        ),
        Metric(
            "max_patches_per_s",
            "max delivered patches/s",
            "1/s",
            "higher",
            Goal("ratio", ">=", 2.0),
            ceiling=True,
        ),
    ),
    run=run,
    budget_s=(120, 320),
    ceiling_ok=True,
)

"""S5 big document: time of the PULL-DOC of a 100,000-point scatter (≈1.6 MB of buffers).

Per repetition inside a run: open a new session (GET page, websocket, ACK; the page GET is timed
separately as `page_ms`, it includes building the document), then time PULL-DOC-REQ -> last byte of
the PULL-DOC-REPLY (all buffers). Median over the pulls.
"""

from __future__ import annotations

import time

from bench.loadgen.client import BokehSession
from bench.servers import Slot

from .common import Config, Goal, Metric, Outcome, Scenario, ms, percentile


async def run(slot: Slot, cfg: Config) -> Outcome:
    out = Outcome()
    pulls, pages, sizes = [], [], []
    async with slot.serve(["bigdoc"]) as srv:
        target = srv.target("bigdoc")
        for _ in range(cfg.q(5, 12)):
            t0 = time.perf_counter()
            sess = await BokehSession.start(target)
            t1 = time.perf_counter()
            reply = await sess.pull_doc(parse=False)
            t2 = time.perf_counter()
            await sess.close()
            pages.append(t1 - t0)
            pulls.append(t2 - t1)
            sizes.append(reply.nbytes)
    out.metrics["pull_ms"] = ms(percentile(pulls[1:], 50))
    out.info.update(
        first_pull_ms=ms(pulls[0]),
        page_ms=ms(percentile(pages, 50)),
        reply_mb=round(max(sizes) / 1e6, 3),
        pulls=len(pulls) - 1,
    )
    return out


SCENARIO = Scenario(
    name="S5",
    title="big document",
    measures=__doc__.split("\n\n")[0],
    metrics=(Metric("pull_ms", "PULL-DOC of a 100k-point scatter", "ms", "lower", Goal("ratio", "<=", 0.4)),),
    run=run,
    budget_s=(60, 180),
)

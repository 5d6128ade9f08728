"""S1 session start: GET page -> websocket (token subprotocol) -> ACK -> PULL-DOC -> close.

For the `hello` app (one Div) and the `sliders` app (plot + 4 sliders, 200 points), each on a fresh
server: latency at 1 virtual user (median of GET..PULL-DOC-REPLY, close not included), then
throughput with 32 virtual users looping back to back: page views per second = 32 / mean loop time
(Little's law, not quantized for slow servers; the closing handshake is part of each loop; the plain
count of loops completed in the window is in the info as `*_rate_per_s`), and the server's CPU time
per page view in that loop (server process tree and its Redis, if any; informational). Each user keeps one
keep-alive HTTP connection for its page GETs, as a browser would, and opens a new websocket per view.
"""

from __future__ import annotations

import time

from bench.loadgen.client import Target, open_session_and_pull
from bench.loadgen.http import HTTPConnection
from bench.servers import Slot

from .common import (
    Config,
    Goal,
    Metric,
    Outcome,
    Scenario,
    closed_loop,
    loop_with_cpu,
    ms,
    percentile,
)

APPS = ("hello", "sliders")


async def _view(target: Target, http: HTTPConnection) -> float:
    t0 = time.perf_counter()
    sess = await open_session_and_pull(target, http)
    dt = time.perf_counter() - t0
    await sess.close()
    return dt


async def run(slot: Slot, cfg: Config) -> Outcome:
    out = Outcome()
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

            users = [HTTPConnection(target.host, target.port) for _ in range(32)]
            res, cpu, redis_cpu = await loop_with_cpu(
                srv,
                closed_loop(
                    users,
                    lambda h, _i, t=target: _view(t, h),
                    duration=cfg.q(4.0, 15.0),
                    warmup=cfg.q(1.0, 3.0),
                ),
            )
            for h in users:
                await h.close()
            out.metrics[f"{app}_rate_32"] = round(res.rate_little, 2)
            out.metrics[f"{app}_cpu_ms_32"] = ms(cpu)
            out.info[f"{app}_32u_redis_cpu_ms"] = ms(redis_cpu)
            out.info.update(res.summary(f"{app}_32u_"))
    return out


SCENARIO = Scenario(
    name="S1",
    title="session start",
    measures=__doc__.split("\n\n")[0],
    metrics=(
        Metric(
            "hello_latency_ms", "hello: page→PULL-DOC latency, 1 user", "ms", "lower", Goal("abs", "<=", 10.0)
        ),
        Metric(
            "hello_rate_32",
            "hello: page views/s, 32 users",
            "1/s",
            "higher",
            Goal("ratio", ">=", 2.5),
            ceiling=True,
        ),
        Metric("hello_cpu_ms_32", "hello: server CPU per page view, 32 users", "ms", "lower"),
        Metric(
            "sliders_latency_ms",
            "sliders: page→PULL-DOC latency, 1 user",
            "ms",
            "lower",
            Goal("abs", "<=", 10.0),
        ),
        Metric(
            "sliders_rate_32",
            "sliders: page views/s, 32 users",
            "1/s",
            "higher",
            Goal("ratio", ">=", 2.5),
            ceiling=True,
        ),
        Metric("sliders_cpu_ms_32", "sliders: server CPU per page view, 32 users", "ms", "lower"),
    ),
    run=run,
    budget_s=(90, 240),
    ceiling_ok=True,
)

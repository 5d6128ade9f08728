"""S13 metrics overhead: S2's throughput loop on Aperture without and with `--metrics`.

One run starts fresh servers of the same slot, alternately without and with `--metrics` (quick: one
pair, full: two pairs, order off, on, off, on), each with 50 `sliders` sessions changing their slider
back to back (S2's loop: PATCH-DOC → data patch → OK). Reported: round trips/s of each (median over
the pairs), their ratio (goal: with metrics ≥ 0.95 × without, the issue's "within 5 %"), and the
server's CPU per round trip of each. The with-metrics server is scraped once at the end of its loop
(as Prometheus would); the PATCH-DOCs it counted are in the info beside the round trips the loop
completed (the scrape may count a few more: round trips cut off at the end). Only Aperture has
`--metrics`: other slots are skipped.
"""

from __future__ import annotations

import statistics
import urllib.request

from bench.servers import Slot

from .common import Config, Goal, Metric, Outcome, Scenario, close_all, closed_loop, loop_with_cpu, open_many
from .s2_interaction import make_users, user_step

USERS = 50


def _patch_docs_counted(port: int) -> float:
    """PATCH-DOC messages the server's /metrics counted (all apps), from one scrape."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode("utf-8")
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("aperture_message_seconds_count{") and 'msgtype="PATCH-DOC"' in line
    )


async def _measure(slot: Slot, cfg: Config, metrics: bool) -> tuple[float, float, tuple[float, int] | None]:
    """(round trips/s, server µs of CPU per round trip, (PATCH-DOCs the scrape counted, round trips
    completed) or None)."""
    async with slot.serve(["sliders"], ["--metrics"] if metrics else []) as srv:
        sessions = await open_many(srv.target("sliders"), USERS, concurrency=4)
        users = make_users(sessions)
        res, cpu, _ = await loop_with_cpu(
            srv, closed_loop(users, user_step, duration=cfg.q(4.0, 15.0), warmup=cfg.q(1.0, 3.0))
        )
        counted = (_patch_docs_counted(srv.port), res.completed) if metrics else None
        await close_all(sessions)
    return res.rate_little, cpu * 1e6, counted


async def run(slot: Slot, cfg: Config) -> Outcome:
    out = Outcome()
    if "aperture" not in " ".join(slot.cmd):
        out.skipped = "--metrics is an Aperture option"
        return out
    rates: dict[bool, list[float]] = {False: [], True: []}
    cpus: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(cfg.q(1, 2)):
        for metrics in (False, True):
            rate, cpu, counted = await _measure(slot, cfg, metrics)
            rates[metrics].append(rate)
            cpus[metrics].append(cpu)
            if counted is not None:
                out.info.setdefault("patch_docs_scraped", []).append(counted[0])
                out.info.setdefault("round_trips_completed", []).append(counted[1])
    off, on = statistics.median(rates[False]), statistics.median(rates[True])
    out.metrics["rtt_per_s_off"] = round(off, 2)
    out.metrics["rtt_per_s_metrics"] = round(on, 2)
    out.metrics["metrics_ratio"] = round(on / off, 3) if off else float("nan")
    out.metrics["cpu_us_per_rt_off"] = round(statistics.median(cpus[False]), 1)
    out.metrics["cpu_us_per_rt_metrics"] = round(statistics.median(cpus[True]), 1)
    out.info["rates_off"] = [round(r, 2) for r in rates[False]]
    out.info["rates_metrics"] = [round(r, 2) for r in rates[True]]
    return out


SCENARIO = Scenario(
    name="S13",
    title="metrics overhead",
    measures=__doc__.split("\n\n")[0],
    metrics=(
        Metric("rtt_per_s_off", "round trips/s, 50 sessions, metrics off", "1/s", "higher"),
        Metric("rtt_per_s_metrics", "round trips/s, 50 sessions, --metrics", "1/s", "higher"),
        Metric(
            "metrics_ratio", "round trips/s with --metrics ÷ without", "×", "higher", Goal("abs", ">=", 0.95)
        ),
        Metric("cpu_us_per_rt_off", "server CPU per round trip, metrics off", "µs", "lower"),
        Metric("cpu_us_per_rt_metrics", "server CPU per round trip, --metrics", "µs", "lower"),
    ),
    run=run,
    budget_s=(90, 300),
)

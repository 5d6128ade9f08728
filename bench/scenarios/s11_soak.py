"""S11 soak: server RSS over repeated cycles of session churn, sessions served, errors.

A cycle: `users` virtual users for `cycle_s` seconds; each opens a `sliders` session (page,
websocket, PULL-DOC), changes a slider every 500 ms (waiting for the data patch and OK) for a
random 2-10 s, closes its websocket and starts the next session. Then the load stops and the
server reaps the closed sessions (`--unused-session-lifetime 1000 --check-unused-sessions 500`)
during a rest of `rest_s` seconds. RSS of the server process tree is sampled every second.
Metrics: `rest_vs_1min` = RSS at the end of the last rest ÷ RSS one minute (quick: half a cycle)
into the first cycle; `ratchet_pct` = growth of the end-of-rest RSS per cycle over the second half
of the cycles (the first ones also warm caches and touch memory for the first time), in % of the
first cycle's; sessions served per second of load; errors (failed page loads, websockets or round
trips). A server that completes no round trip for 60 s is marked stalled; its later cycles are
skipped. Size: quick 3 × 30 s at 100 users (≈ 2 min), full 5 × 100 s at 200 users (≈ 10 min);
override with `--param soak_cycles=N,soak_cycle_s=S,soak_users=U,soak_rest_s=R`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.loadgen.client import Target, open_session_and_pull
from bench.servers import Server, Slot

from .common import Config, Goal, Metric, Outcome, Scenario, ms, percentile, slider_roundtrip

LIFETIME_MS, CHECK_MS = 1000, 500
STALL_S = 60.0  # no round trip completed for this long: the server is stalled
STEP_TIMEOUT_S = 30.0  # bound on any single wait of a user for the server
MARKS = (0.25, 0.5, 0.75)  # RSS reported at these fractions of each cycle's load phase


@dataclass(frozen=True)
class SoakParams:
    cycles: int
    cycle_s: float
    users: int
    rest_s: float  # after the load stops: sessions are reaped, RSS settles
    interval_s: float = 0.5  # between slider changes of one session
    session_s: tuple[float, float] = (2.0, 10.0)  # how long a user keeps a session
    sample_s: float = 1.0
    seed: int = 11

    @property
    def mark_s(self) -> float:
        """The "one minute into the first cycle" mark (half a cycle when cycles last a minute or less)."""
        return 60.0 if self.cycle_s > 60 else self.cycle_s / 2

    @classmethod
    def for_config(cls, cfg: Config) -> SoakParams:
        return cls(
            cycles=int(cfg.param("soak_cycles", cfg.q(3, 5))),
            cycle_s=float(cfg.param("soak_cycle_s", cfg.q(30, 100))),
            users=int(cfg.param("soak_users", cfg.q(100, 200))),
            rest_s=float(cfg.param("soak_rest_s", cfg.q(10, 20))),
        )


@dataclass
class CycleStats:
    sessions: int = 0  # sessions opened, used and closed without an error
    roundtrips: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    last_progress: float = field(default_factory=time.monotonic)
    stalled_at_s: float | None = None

    def error(self, exc: BaseException) -> None:
        self.errors.append(f"{type(exc).__name__}: {exc}")


class RssSampler:
    """Samples a process tree's RSS (MiB) every `every` seconds, tagged with the current phase."""

    def __init__(self, read_kib: Callable[[], int], every: float) -> None:
        self._read, self._every = read_kib, every
        self.t0 = time.monotonic()
        self.phase = "start"
        self.samples: list[tuple[float, str, float]] = []  # (seconds since t0, phase, MiB)
        self._task: asyncio.Task[None] | None = None

    def now(self) -> float:
        return time.monotonic() - self.t0

    def sample(self) -> float:
        mib = round(self._read() / 1024, 1)
        self.samples.append((round(self.now(), 1), self.phase, mib))
        return mib

    async def _loop(self) -> None:
        for _ in range(1_000_000):
            self.sample()
            await asyncio.sleep(self._every)

    def __enter__(self) -> RssSampler:
        self._task = asyncio.get_running_loop().create_task(self._loop())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()

    def at(self, seconds: float) -> float | None:
        """The first sample taken at or after `seconds` since t0."""
        return next((mib for t, _, mib in self.samples if t >= seconds), None)


async def _user(target: Target, p: SoakParams, rng: random.Random, stop_at: float, st: CycleStats) -> None:
    max_steps = int(p.session_s[1] / p.interval_s) + 2
    for _ in range(100_000):  # sessions of this user; ended by stop_at
        if time.monotonic() >= stop_at:
            return
        try:
            sess = await open_session_and_pull(target, parse=True, timeout=STEP_TIMEOUT_S)
        except Exception as exc:  # counted; the user tries again shortly
            st.error(exc)
            await asyncio.sleep(0.5)
            continue
        end = min(time.monotonic() + rng.uniform(*p.session_s), stop_at)
        try:
            slider = sess.model_ids("Slider").get("amplitude", "")
            for i in range(max_steps):
                t0 = time.monotonic()
                if t0 >= end:
                    break
                await slider_roundtrip(sess, slider, i)
                st.last_progress = time.monotonic()
                st.roundtrips.append(st.last_progress - t0)
                await asyncio.sleep(max(0.0, t0 + p.interval_s - time.monotonic()))
            st.sessions += 1
        except Exception as exc:
            st.error(exc)
        finally:
            await sess.close()


async def run_cycle(target: Target, p: SoakParams, rng: random.Random, t0: float) -> CycleStats:
    """One cycle of load: `p.users` users for `p.cycle_s` seconds (or until the server stalls)."""
    st = CycleStats()
    started = time.monotonic()
    stop_at = started + p.cycle_s
    users = [
        asyncio.create_task(_user(target, p, random.Random(rng.random()), stop_at, st))
        for _ in range(p.users)
    ]
    for _ in range(int(p.cycle_s) + int(STEP_TIMEOUT_S) + 30):  # watchdog, once a second
        if all(u.done() for u in users):
            break
        if time.monotonic() - max(st.last_progress, started) > STALL_S:
            st.stalled_at_s = round(max(st.last_progress, started) - t0, 1)
            break
        await asyncio.sleep(1.0)
    pending = [u for u in users if not u.done()]
    for u in pending:
        u.cancel()
    if pending:
        await asyncio.wait(pending, timeout=10)
    return st


def _cycle_record(c: int, st: CycleStats, rss: RssSampler, t_load: float, t_rest: float) -> dict[str, Any]:
    load = [(t, mib) for t, ph, mib in rss.samples if ph == f"load{c}"]
    rec: dict[str, Any] = {
        "cycle": c,
        "load_s": round(t_rest - t_load, 1),
        "sessions": st.sessions,
        "roundtrips": len(st.roundtrips),
        "rtt_p50_ms": ms(percentile(st.roundtrips, 50)) if st.roundtrips else None,
        "rtt_p99_ms": ms(percentile(st.roundtrips, 99)) if st.roundtrips else None,
        "errors": len(st.errors),
        "first_error": st.errors[0] if st.errors else None,
        "stalled_at_s": st.stalled_at_s,
        "rss_load_start_mib": load[0][1] if load else None,
        "rss_peak_mib": max((mib for _, mib in load), default=None),
    }
    for f in MARKS:
        rec[f"rss_{round(f * 100)}pct_mib"] = rss.at(t_load + f * (t_rest - t_load))
    return rec


async def soak(
    srv: Server, target: Target, p: SoakParams, after_rest: Callable[[int], Awaitable[None]] | None = None
) -> Outcome:
    """Run the cycles against a started server. `after_rest(cycle)`, if given, is awaited after
    each rest's RSS reading (e.g. to inspect the server between cycles)."""
    out = Outcome()
    rng = random.Random(p.seed)
    cycles: list[dict[str, Any]] = []
    with RssSampler(srv.rss_kib, p.sample_s) as rss:
        idle = rss.sample()
        for c in range(1, p.cycles + 1):
            rss.phase = f"load{c}"
            t_load = rss.now()
            st = await run_cycle(target, p, rng, rss.t0)
            rss.phase = f"rest{c}"
            t_rest = rss.now()
            await asyncio.sleep(p.rest_s)
            rec = _cycle_record(c, st, rss, t_load, t_rest)
            rec["rss_rest_mib"] = rss.sample()
            cycles.append(rec)
            if after_rest is not None:
                await after_rest(c)
            if st.stalled_at_s is not None:
                break
        mark = rss.at(p.mark_s)
    load_s = sum(c["load_s"] for c in cycles)
    served = sum(c["sessions"] for c in cycles)
    out.metrics["sessions_per_s"] = round(served / load_s, 2) if load_s else 0.0
    out.metrics["errors"] = float(sum(c["errors"] for c in cycles))
    stalled = next((c["stalled_at_s"] for c in cycles if c["stalled_at_s"] is not None), None)
    rests = [c["rss_rest_mib"] for c in cycles]
    if stalled is None and mark:
        out.metrics["rest_vs_1min"] = round(rests[-1] / mark, 3)
        if len(rests) > 1:
            first = len(rests) // 2 if len(rests) > 2 else 0  # the second half: past the warm-up
            steps = len(rests) - 1 - first
            out.metrics["ratchet_pct"] = round(100 * (rests[-1] - rests[first]) / rests[0] / steps, 2)
    out.info.update(
        params={**asdict(p), "mark_s": p.mark_s},
        rss_idle_mib=idle,
        rss_1min_mib=mark,
        rss_rest_mib=rests,
        sessions=served,
        stalled_at_s=stalled,
        cycles=cycles,
        rss_samples=rss.samples,
    )
    return out


async def run(slot: Slot, cfg: Config) -> Outcome:
    p = SoakParams.for_config(cfg)
    args = ["--unused-session-lifetime", str(LIFETIME_MS), "--check-unused-sessions", str(CHECK_MS)]
    async with slot.serve(["sliders"], args) as srv:
        return await soak(srv, srv.target("sliders"), p)


def details(runs: list[dict[str, Any]]) -> list[str]:
    """Markdown: RSS over time per cycle, for every run of this scenario."""
    pcts = " | ".join(f"+{round(f * 100)} %" for f in MARKS)
    out = [
        "RSS of the server tree in MiB: at the start of each cycle's load, at 25/50/75 % of it, its "
        "peak, and after the rest (sessions reaped). Round trips: slider change → data patch → OK.",
        "",
        f"| slot | cycle | sessions | errors | RTT p50 / p99 ms | start | {pcts} | peak | after rest |",
        "|---|---|---|---|---|---|" + "---|" * len(MARKS) + "---|---|",
    ]
    for r in runs:
        info = r.get("info") or {}
        cycles = info.get("cycles") or []
        if not cycles:
            out.append(f"| {r['slot']} | – | | | | | " + "| " * len(MARKS) + f"| | {r.get('error') or ''} |")
            continue
        out.append(f"| {r['slot']} | idle | | | | {info.get('rss_idle_mib')} |" + " |" * len(MARKS) + " | |")
        for c in cycles:
            marks = " | ".join(str(c.get(f"rss_{round(f * 100)}pct_mib")) for f in MARKS)
            stalled = c.get("stalled_at_s")
            stall = f" (stalled: no round trip after {stalled} s)" if stalled is not None else ""
            out.append(
                f"| {r['slot']} | {c['cycle']}{stall} | {c['sessions']} | {c['errors']} | "
                f"{c.get('rtt_p50_ms')} / {c.get('rtt_p99_ms')} | {c.get('rss_load_start_mib')} | {marks} | "
                f"{c.get('rss_peak_mib')} | {c.get('rss_rest_mib')} |"
            )
    return out


SCENARIO = Scenario(
    name="S11",
    title="soak: memory over repeated cycles",
    measures=__doc__.split("\n\n")[0],
    metrics=(
        Metric(
            "rest_vs_1min",
            "RSS after the last cycle's sessions are reaped ÷ RSS 1 min into the first cycle",
            "×",
            "lower",
            Goal("abs", "<=", 1.2),
        ),
        Metric(
            "ratchet_pct",
            "growth of the after-rest RSS per cycle, second half of the cycles",
            "%",
            "lower",
            Goal("abs", "<=", 1.0),
        ),
        Metric("sessions_per_s", "sessions served per second of load", "1/s", "higher", None),
        Metric("errors", "failed page loads, websockets or round trips", "", "lower", Goal("abs", "<=", 0.0)),
    ),
    run=run,
    budget_s=(200, 900),
    max_reps=1,  # the cycles are the repetitions
    details=details,
)

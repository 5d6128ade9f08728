"""S11 soak: server RSS over repeated cycles of session churn, sessions served, errors.

A cycle: `users` virtual users for `cycle_s` seconds; each opens a `sliders` session (page,
websocket, PULL-DOC), changes a slider every 500 ms (waiting for each data patch and OK) for a
random 2-10 s, closes its websocket and starts the next session. Then the load stops and the
server reaps the closed sessions (`--unused-session-lifetime 1000 --check-unused-sessions 500`)
during a rest of `rest_s` seconds. RSS of the server process tree is sampled every second.
Metrics: `rest_vs_1min` = RSS at the end of the last rest ÷ RSS one minute (quick: `mark_s`) into
the first cycle (goal ≤ 1.2); `ratchet_pct` = growth of the end-of-rest RSS per cycle after the
first, in % of the first one's (no ratchet: ≈ 0); sessions served per second; errors. A server
that completes no round trip for 30 s is marked stalled and its remaining cycles are skipped.
Size: quick 2 × 30 s at 100 users; full 3 × 170 s at 200 users (≈ 10 min);
`--param soak_cycles=N,soak_cycle_s=S,soak_users=U,soak_rest_s=R` overrides either.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.loadgen.client import Target, open_session_and_pull
from bench.servers import Server, Slot

from .common import Config, Goal, Metric, Outcome, Scenario, slider_roundtrip

LIFETIME_MS, CHECK_MS = 1000, 500
STALL_S = 30.0  # no round trip completed for this long: the server is stalled
STEP_TIMEOUT_S = 30.0  # bound on any single wait of a user for the server


@dataclass(frozen=True)
class SoakParams:
    cycles: int
    cycle_s: float
    users: int
    rest_s: float  # after the load stops: sessions are reaped, RSS settles
    mark_s: float  # "one minute into the first cycle" (shorter in a quick run)
    interval_s: float = 0.5  # between slider changes of one session
    session_s: tuple[float, float] = (2.0, 10.0)  # how long a user keeps a session
    sample_s: float = 1.0
    seed: int = 11

    @classmethod
    def for_config(cls, cfg: Config) -> SoakParams:
        p = cls(
            cycles=int(cfg.param("soak_cycles", cfg.q(2, 3))),
            cycle_s=float(cfg.param("soak_cycle_s", cfg.q(30, 170))),
            users=int(cfg.param("soak_users", cfg.q(100, 200))),
            rest_s=float(cfg.param("soak_rest_s", cfg.q(12, 20))),
            mark_s=60.0,
        )
        return SoakParams(**{**p.__dict__, "mark_s": min(60.0, p.cycle_s / 2)})


@dataclass
class CycleStats:
    sessions: int = 0  # sessions opened, used and closed without an error
    roundtrips: int = 0
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

    def sample(self) -> float:
        mib = round(self._read() / 1024, 1)
        self.samples.append((round(time.monotonic() - self.t0, 1), self.phase, mib))
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
                st.roundtrips += 1
                st.last_progress = time.monotonic()
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
        asyncio.create_task(_user(target, p, random.Random(rng.random()), stop_at, st)) for _ in range(p.users)
    ]
    for _ in range(int(p.cycle_s) + int(STEP_TIMEOUT_S) + 30):  # watchdog, once a second
        done = sum(u.done() for u in users)
        if done == len(users):
            break
        if time.monotonic() - max(st.last_progress, started) > STALL_S:
            st.stalled_at_s = round(st.last_progress - t0, 1)
            break
        await asyncio.sleep(1.0)
    pending = [u for u in users if not u.done()]
    for u in pending:
        u.cancel()
    if pending:
        await asyncio.wait(pending, timeout=10)
    return st


async def soak(srv: Server, target: Target, p: SoakParams, rest: Callable[[int], Any] | None = None) -> Outcome:
    """Run the cycles against a started server; `rest(cycle)` may be awaited after each rest."""
    out = Outcome()
    rng = random.Random(p.seed)
    cycles: list[dict[str, Any]] = []
    with RssSampler(srv.rss_kib, p.sample_s) as rss:
        idle = rss.sample()
        for c in range(p.cycles):
            rss.phase = f"load{c + 1}"
            t_load = time.monotonic() - rss.t0
            st = await run_cycle(target, p, rng, rss.t0)
            rss.phase = f"rest{c + 1}"
            t_rest = time.monotonic() - rss.t0
            peak = max((m for t, ph, m in rss.samples if ph == f"load{c + 1}"), default=None)
            await asyncio.sleep(p.rest_s)
            rested = rss.sample()
            if rest is not None:
                await rest(c + 1)
            cycles.append(
                {
                    "cycle": c + 1,
                    "load_s": round(t_rest - t_load, 1),
                    "sessions": st.sessions,
                    "roundtrips": st.roundtrips,
                    "errors": len(st.errors),
                    "first_error": st.errors[0] if st.errors else None,
                    "stalled_at_s": st.stalled_at_s,
                    "rss_peak_mib": peak,
                    "rss_rest_mib": rested,
                }
            )
            if st.stalled_at_s is not None:
                break
        mark = rss.at(p.mark_s)
    load_s = sum(c["load_s"] for c in cycles)
    served = sum(c["sessions"] for c in cycles)
    out.metrics["sessions_per_s"] = round(served / load_s, 2) if load_s else 0.0
    out.metrics["errors"] = float(sum(c["errors"] for c in cycles))
    stalled = next((c["stalled_at_s"] for c in cycles if c["stalled_at_s"] is not None), None)
    if stalled is None and mark:
        rests = [c["rss_rest_mib"] for c in cycles]
        out.metrics["rest_vs_1min"] = round(rests[-1] / mark, 3)
        if len(rests) > 1:
            out.metrics["ratchet_pct"] = round(100 * (rests[-1] - rests[0]) / rests[0] / (len(rests) - 1), 2)
    out.info.update(
        params=p.__dict__,
        rss_idle_mib=idle,
        rss_mark_mib=mark,
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
        Metric("ratchet_pct", "growth of the after-rest RSS per cycle", "%", "lower", Goal("abs", "<=", 2.0)),
        Metric("sessions_per_s", "sessions served per second of load", "1/s", "higher", None),
        Metric("errors", "failed session opens or round trips", "", "lower", Goal("abs", "<=", 0.0)),
    ),
    run=run,
    budget_s=(240, 900),
    max_reps=1,  # the cycles are the repetitions
)

"""Shared pieces of the scenarios: metric/goal declarations, the run configuration, statistics,
and `closed_loop`, the bounded virtual-user loop most scenarios are built on.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from bench.loadgen.client import BokehSession, Target, open_session_and_pull
from bench.servers import Slot

S = TypeVar("S")


@dataclass(frozen=True)
class Goal:
    """`kind="ratio"`: compare A/B with `value`; `kind="abs"`: compare A's own median with `value`."""

    kind: str
    op: str  # ">=" or "<="
    value: float

    def text(self) -> str:
        lhs = "A/B" if self.kind == "ratio" else "A"
        return f"{lhs} {'≥' if self.op == '>=' else '≤'} {self.value:g}"

    def met(self, a: float | None, ratio: float | None, tolerance: float = 0.0) -> bool | None:
        """Whether the goal is met, allowing a relative `tolerance` (e.g. 0.05 = within 5 %)."""
        x = ratio if self.kind == "ratio" else a
        if x is None or math.isnan(x):
            return None
        slack = abs(self.value) * tolerance
        return x >= self.value - slack if self.op == ">=" else x <= self.value + slack


NOT_WORSE_HIGHER = Goal("ratio", ">=", 1.0)
NOT_WORSE_LOWER = Goal("ratio", "<=", 1.0)


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    better: str | None  # "higher", "lower" or None (informational)
    goal: Goal | None = None
    ceiling: bool = False  # compare with the harness ceiling (throughput metrics)


@dataclass
class Config:
    """Run-size knobs. `q(quick, full)` picks by mode."""

    quick: bool = True
    params: dict[str, str] = field(default_factory=dict)  # --param overrides, e.g. soak_users=50

    def q(self, quick: Any, full: Any) -> Any:
        return quick if self.quick else full

    def param(self, name: str, default: Any) -> Any:
        """A scenario size knob: the `--param name=value` given, else `default`."""
        return self.params.get(name, default)


@dataclass
class Outcome:
    metrics: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    measures: str
    metrics: tuple[Metric, ...]
    run: Callable[[Slot, Config], Awaitable[Outcome]]
    budget_s: tuple[float, float]  # hard time limit (quick, full)
    ceiling_ok: bool = False  # can run against the trivial ceiling server
    max_reps: int | None = None  # cap on --reps (a long scenario that repeats cycles itself)
    details: Callable[[list[dict[str, Any]]], list[str]] | None = None  # extra report section (Markdown)


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    xs = sorted(values)
    k = (len(xs) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


@dataclass
class LoopResult(Generic[S]):
    latencies: list[float]
    errors: list[str]
    window_s: float
    states: list[S]
    censored: int = 0  # latencies that are lower bounds (the step timed out)
    completed: int = 0  # steps completed at any time (warm-up and window): CPU cost per step

    @property
    def rate(self) -> float:
        """Steps completed in the window per second."""
        return len(self.latencies) / self.window_s if self.window_s > 0 else float("nan")

    @property
    def rate_little(self) -> float:
        """users / mean step time (Little's law; closed loop without think time). Unlike `rate`,
        not quantized when steps take a sizeable part of the window (slow servers)."""
        if not self.latencies:
            return float("nan")
        return len(self.states) / statistics.fmean(self.latencies)

    def summary(self, prefix: str = "") -> dict[str, Any]:
        lat = self.latencies
        return {
            f"{prefix}n": len(lat),
            f"{prefix}errors": len(self.errors),
            f"{prefix}censored": self.censored,
            f"{prefix}first_error": self.errors[0] if self.errors else None,
            f"{prefix}p50_ms": ms(percentile(lat, 50)) if lat else None,
            f"{prefix}p99_ms": ms(percentile(lat, 99)) if lat else None,
            f"{prefix}max_ms": ms(max(lat)) if lat else None,
            f"{prefix}rate_per_s": round(self.rate, 2),
            f"{prefix}rate_little_per_s": round(self.rate_little, 2) if self.latencies else None,
        }


async def closed_loop(
    states: list[S],
    step: Callable[[S, int], Awaitable[object]],
    duration: float,
    warmup: float = 0.0,
    max_iters: int = 1_000_000,
    step_timeout: float = 30.0,
    think: float = 0.0,
    count: str = "completed",
    stamps: list[tuple[float, float]] | None = None,
) -> LoopResult[S]:
    """Each state drives one virtual user calling `step(state, i)` back to back (plus `think`).

    count="completed" (throughput): a step counts if it completes inside the measuring window
    [warmup, warmup+duration]. count="started" (tail latency): a step counts if it starts inside
    the window, and steps still running at the end are awaited (up to `step_timeout`), so a long
    stall is measured in full rather than cut off; a step that times out counts with the time it
    had taken (a lower bound, counted in `censored`).
    Bounded by `max_iters` per user and by time; stragglers are cancelled.
    `stamps`, if given, gets (start, end) `perf_counter` times of every completed step (for
    figures over several windows, see `Span`).
    """
    t0 = time.perf_counter()
    t_w, t_end = t0 + warmup, t0 + warmup + duration
    lat: list[float] = []
    errors: list[str] = []
    censored: list[int] = []
    completed: list[int] = []
    by_start = count == "started"

    async def user(st: S) -> None:
        for i in range(max_iters):
            ts = time.perf_counter()
            if ts >= t_end:
                return
            try:
                await asyncio.wait_for(step(st, i), step_timeout)
            except (TimeoutError, Exception) as exc:  # recorded, the loop goes on
                errors.append(f"{type(exc).__name__}: {exc}")
                if by_start and isinstance(exc, TimeoutError) and t_w <= ts < t_end:
                    lat.append(time.perf_counter() - ts)
                    censored.append(1)
                await asyncio.sleep(0.1)
                continue
            te = time.perf_counter()
            completed.append(1)
            if stamps is not None:
                stamps.append((ts, te))
            if (t_w <= ts < t_end) if by_start else (t_w <= te <= t_end):
                lat.append(te - ts)
            if think:
                await asyncio.sleep(think)

    tasks = [asyncio.create_task(user(s)) for s in states]
    _, pending = await asyncio.wait(tasks, timeout=warmup + duration + step_timeout + 5)
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.wait(pending, timeout=5)
    return LoopResult(lat, errors, duration, states, len(censored), len(completed))


async def loop_with_cpu(server: Any, loop: Awaitable[LoopResult[S]]) -> tuple[LoopResult[S], float, float]:
    """Run a `closed_loop`; also return the server's CPU seconds per completed step (its process
    tree and its Redis, from /proc; other load on the machine moves it much less than throughput),
    and the part of it that was its Redis's (0 without one)."""
    cpu0, redis0 = server.cpu_seconds(), server.redis_cpu_seconds()
    res = await loop
    cpu, redis = server.cpu_seconds() - cpu0, server.redis_cpu_seconds() - redis0
    if not res.completed:
        return res, float("nan"), float("nan")
    return res, cpu / res.completed, redis / res.completed


@dataclass
class Span:
    """A measuring window [start, end) in `perf_counter` seconds, and the server's CPU seconds
    (process tree and Redis; its Redis's part separately) sampled at its edges by `sample_cpu`."""

    start: float
    end: float
    cpu: tuple[float, float] = (math.nan, math.nan)
    redis_cpu: tuple[float, float] = (math.nan, math.nan)

    @property
    def length(self) -> float:
        return self.end - self.start


async def sample_cpu(server: Any, spans: Sequence[Span]) -> None:
    """Sleep until each span edge in turn and record the server's CPU time there."""
    edges = sorted((t, i, k) for i, sp in enumerate(spans) for k, t in enumerate((sp.start, sp.end)))
    got: dict[tuple[int, int], tuple[float, float]] = {}
    for t, i, k in edges:
        await asyncio.sleep(max(0.0, t - time.perf_counter()))
        got[(i, k)] = (server.cpu_seconds(), server.redis_cpu_seconds())
    for i, sp in enumerate(spans):
        (c0, r0), (c1, r1) = got[(i, 0)], got[(i, 1)]
        sp.cpu, sp.redis_cpu = (c0, c1), (r0, r1)


def span_figures(stamps: Sequence[tuple[float, float]], span: Span, users: int) -> dict[str, float]:
    """Figures of the steps that completed inside `span`: count, rate (count / length), Little's-law
    rate (users / mean step time), p50 and max step time, server CPU per step (ms)."""
    lat = [te - ts for ts, te in stamps if span.start <= te <= span.end]
    n = len(lat)
    cpu = span.cpu[1] - span.cpu[0]
    redis = span.redis_cpu[1] - span.redis_cpu[0]
    return {
        "n": n,
        "rate": n / span.length if span.length > 0 else math.nan,
        "rate_little": users / statistics.fmean(lat) if lat else math.nan,
        "p50_ms": ms(percentile(lat, 50)) if lat else math.nan,
        "max_ms": ms(max(lat)) if lat else math.nan,
        "cpu_ms": ms(cpu / n) if n else math.nan,
        "redis_cpu_ms": ms(redis / n) if n else math.nan,
    }


# Both servers check for unused sessions every 17 s by default (`--check-unused-sessions 17000`),
# starting when they start listening, and discard sessions closed more than 15 s before.
REAPING_PERIOD_S = 17.0


def windows_around_reaping(
    warmup: float, steady: float, periods: int, period: float = REAPING_PERIOD_S, margin: float = 1.0
) -> tuple[tuple[float, float], tuple[float, float] | None]:
    """Two measuring windows under continuous load from a server's start (seconds since it was
    ready): one that ends before the first unused-session check (`warmup` + `steady` ≤ period -
    margin; no session can be reaped in it), and one of `periods` whole periods starting `margin`
    after the first check, so it contains `periods` checks (None when `periods` is 0)."""
    if warmup + steady > period - margin:
        raise ValueError(f"window without reaping must end before {period - margin:g} s")
    first = (warmup, warmup + steady)
    if periods <= 0:
        return first, None
    start = period + margin
    return first, (start, start + periods * period)


@dataclass
class WindowedLoad:
    """Result of `windowed_load`: figures (`span_figures`) of the window before the first reaping
    pass and of the window with reaping (None if not measured), the loop, and the windows' times
    (seconds since the server was ready)."""

    steady: dict[str, float]
    reaping: dict[str, float] | None
    loop: LoopResult[Any]
    windows_s: list[tuple[float, float]]


async def windowed_load(
    server: Any,
    states: list[S],
    step: Callable[[S, int], Awaitable[object]],
    warmup: float,
    steady: float,
    periods: int,
    ready: float | None = None,
) -> WindowedLoad:
    """One continuous closed loop on a server that became ready at `ready` (`perf_counter`; default
    now), measured in the two windows of `windows_around_reaping` (CPU sampled at their edges)."""
    ready = time.perf_counter() if ready is None else ready
    (w0, w1), rw = windows_around_reaping(warmup, steady, periods)
    spans = [Span(ready + w0, ready + w1)]
    if rw is not None:
        spans.append(Span(ready + rw[0], ready + rw[1]))
    stamps: list[tuple[float, float]] = []
    sampler = asyncio.create_task(sample_cpu(server, spans))
    try:
        res = await closed_loop(states, step, duration=spans[-1].end - time.perf_counter(), stamps=stamps)
        await sampler
    finally:
        sampler.cancel()
    figs = [span_figures(stamps, sp, len(states)) for sp in spans]
    return WindowedLoad(
        figs[0],
        figs[1] if rw is not None else None,
        res,
        [(round(sp.start - ready, 1), round(sp.end - ready, 1)) for sp in spans],
    )


async def open_many(
    target: Target, n: int, concurrency: int = 4, deadline: float | None = None, timeout: float = 30.0
) -> list[BokehSession]:
    """Open `n` sessions (page + websocket + ACK + PULL-DOC, doc parsed), `concurrency` at a time.

    `timeout` bounds every later wait of these sessions for a message.
    """
    sem = asyncio.Semaphore(concurrency)
    out: list[BokehSession] = []

    async def one() -> None:
        async with sem:
            if deadline is not None and time.monotonic() > deadline:
                return
            out.append(await open_session_and_pull(target, parse=True, timeout=timeout))

    results = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
    errs = [r for r in results if isinstance(r, BaseException)]
    if errs and not out:
        raise errs[0]
    return out


async def close_all(sessions: list[BokehSession], concurrency: int = 32) -> None:
    sem = asyncio.Semaphore(concurrency)

    async def one(s: BokehSession) -> None:
        async with sem:
            await s.close()

    await asyncio.gather(*(one(s) for s in sessions), return_exceptions=True)


def slider_value(i: int) -> float:
    """A value in the slider range that differs from the previous iteration's (so on_change fires)."""
    return ((i % 90) - 45) / 10 + 0.05


async def slider_roundtrip(sess: BokehSession, slider_id: str, i: int) -> int:
    """Change a slider and wait for the OK; returns the number of server PATCH-DOCs before it."""
    others = await sess.set_value(slider_id, "value", slider_value(i))
    return sum(1 for m in others if m.msgtype == "PATCH-DOC")

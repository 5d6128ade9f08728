"""Summaries and the Markdown report, computed from a results JSON (see bench/run.py).

`summarize(results)` -> one row per (scenario, metric): per slot median [min-max] over the
repetitions, ratio A/B of the medians, goal and whether it is met, plus notes that help tell
noise from signal (other load on the machine, load generator near its ceiling or CPU-bound).
`python -m bench.report results/<file>.json` re-renders the Markdown.

A results file of `--store-compare` (`"comparison": "store"`: A = Aperture with a session store,
B = the same without) is judged by `STORE_GOALS` instead of the scenarios' own goals.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any

from bench.scenarios import SCENARIOS
from bench.scenarios.common import Goal, Metric

OTHER_LOAD_WARN_PCT = 15.0  # other processes used more than this share of one core on average
LOADGEN_BUSY_PCT = 90.0  # the load generator's core was (almost) saturated
NEAR_CEILING = 0.7  # a figure above this fraction of the harness ceiling may be harness-bound
WITHIN = 0.05  # a goal missed by less than this (relative) is reported as "≈", not "no"
# Issue 10 item 5: with a session store, throughput within 10 % of the same server without one.
STORE_GOALS: dict[tuple[str, str], Goal] = {
    ("S1", "hello_rate_32"): Goal("ratio", ">=", 0.9),
    ("S1", "sliders_rate_32"): Goal("ratio", ">=", 0.9),
    ("S2", "rtt_per_s_50"): Goal("ratio", ">=", 0.9),
}
TITLES = {
    None: "Aperture vs bokeh serve",
    "store": "Aperture with a session store (A) vs without (B)",
}


def goal_of(results: dict[str, Any], scenario: str, m: Metric) -> Goal | None:
    """The goal a metric is judged by in this results file (see STORE_GOALS)."""
    if results.get("comparison") == "store":
        return STORE_GOALS.get((scenario, m.key))
    return m.goal


def _stats(values: list[float]) -> dict[str, float] | None:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def ratio_of(a: float | None, b: float | None) -> float | None:
    """A/B; infinite when B is 0 and A is not (e.g. a server that served nothing in a window)."""
    if a is None or b is None or math.isnan(a) or math.isnan(b):
        return None
    if b == 0:
        return math.inf if a > 0 else None
    return a / b


def _fmt(x: float | None) -> str:
    if x is None or math.isnan(x):
        return "–"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def _cell(s: dict[str, float] | None) -> str:
    if s is None:
        return "–"
    if s["n"] == 1:
        return _fmt(s["median"])
    return f"{_fmt(s['median'])} [{_fmt(s['min'])}–{_fmt(s['max'])}]"


def summarize(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    ceiling = results.get("ceiling", {})
    for sc in SCENARIOS:
        runs = [r for r in results["runs"] if r["scenario"] == sc.name]
        if not runs:
            continue
        for m in sc.metrics:
            top = ceiling.get(sc.name, {}).get("metrics", {}).get(m.key)
            rows.append(_row(sc.name, m, runs, top, goal_of(results, sc.name, m)))
    return rows


def _row(
    scenario: str, m: Metric, runs: list[dict[str, Any]], ceiling: float | None, goal_: Goal | None
) -> dict[str, Any]:
    per = {
        s: _stats([r["metrics"].get(m.key) for r in runs if r["slot"] == s and r.get("metrics")])
        for s in "AB"
    }
    a = per["A"]["median"] if per["A"] else None
    b = per["B"]["median"] if per["B"] else None
    ratio = ratio_of(a, b)
    notes = []
    skipped = {r.get("skipped") for r in runs if r.get("skipped")}
    errors = [f"{r['slot']}: {r['error']}" for r in runs if r.get("error")]
    if skipped:
        notes.append("skipped: " + "; ".join(sorted(skipped)))
    if errors:
        notes.append(f"{len(errors)} failed run(s)")
    bounded = [r for r in runs if m.key in (r.get("info") or {}).get("lower_bound_metrics", ())]
    if bounded:
        notes.append(f"lower bound in {len(bounded)} run(s) (see info)")
    other = [r["load"]["other_pct"] for r in runs if r.get("load")]
    if other and max(other) > OTHER_LOAD_WARN_PCT:
        notes.append(f"other load up to {max(other):.0f}% of a core")
    if m.ceiling:
        if any(r.get("load", {}).get("loadgen_pct", 0) > LOADGEN_BUSY_PCT for r in runs):
            notes.append(f"loadgen core >{LOADGEN_BUSY_PCT:.0f}% busy")
        if ceiling:
            top = max(x for x in (a, b) if x is not None) if (a or b) else 0
            if top >= NEAR_CEILING * ceiling:
                notes.append(f"≥{NEAR_CEILING:.0%} of harness ceiling ({_fmt(ceiling)})")
    goal = goal_.text() if goal_ else ""
    met: bool | str | None = goal_.met(a, ratio) if goal_ else None
    if met is False and goal_ and goal_.met(a, ratio, WITHIN):
        met = "≈"
    return {
        "scenario": scenario, "metric": m.key, "label": m.label, "unit": m.unit, "better": m.better,
        "A": per["A"], "B": per["B"], "ratio": ratio, "goal": goal, "met": met, "ceiling": ceiling,
        "notes": notes,
    }  # fmt: skip


def _wall(run: dict[str, Any]) -> str:
    pre = run.get("pre_run") or {}
    wait = f" (+{pre['waited_s']:.0f} quiet wait)" if pre.get("waited_s", 0) >= 2 else ""
    return f"{run.get('seconds', 0):.0f}{wait}"


def markdown(results: dict[str, Any]) -> str:
    rows = summarize(results)
    out = [
        f"# {TITLES.get(results.get('comparison'), 'A vs B')} — {results['started']} "
        f"({results['mode']}, {results['reps']} rep(s))",
        "",
        f"- A: `{' '.join(results['slots']['A']['cmd'])}`",
        f"- B: `{' '.join(results['slots']['B']['cmd'])}`",
        f"- machine: {results['host']['cpus']} CPUs, server on CPU {results['host']['server_cpu']}, "
        f"load generator on CPU {results['host']['loadgen_cpu']}; loadavg at start {results['host']['loadavg']}; "
        f"wall time {results.get('wall_s', 0):.0f} s",
        "- cells: median [min–max] over repetitions; ratio = median A / median B",
        "",
        "| scenario | metric | A median [min–max] | B median [min–max] | ratio A/B | goal | met? | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        met = {True: "yes", False: "**no**", None: "–", "≈": f"≈ (within {WITHIN:.0%})"}[r["met"]]
        out.append(
            f"| {r['scenario']} | {r['label']} ({r['unit']}) | {_cell(r['A'])} | {_cell(r['B'])} | "
            f"{_fmt(r['ratio'])} | {r['goal']} | {met} | {'; '.join(r['notes'])} |"
        )
    ceiling = results.get("ceiling") or {}
    if ceiling:
        out += ["", "## Load generator ceiling (trivial server, same pinning)", "",
                "| scenario | metric | ceiling | loadgen CPU % | server CPU % |", "|---|---|---|---|---|"]  # fmt: skip
        for name, c in ceiling.items():
            sc = next((s for s in SCENARIOS if s.name == name), None)
            bounds = (c.get("info") or {}).get("lower_bound_metrics", ())
            load = c.get("load") or {}
            for m in sc.metrics if sc else ():
                if m.unit == "KiB" or m.key not in (c.get("metrics") or {}):
                    continue
                v = ("≥ " if m.key in bounds else "") + _fmt(c["metrics"][m.key])
                lg, sv = _fmt(load.get("loadgen_pct")), _fmt(load.get("server_pct"))
                out.append(f"| {name} | {m.label} ({m.unit}) | {v} | {lg} | {sv} |")
            if c.get("error"):
                out.append(f"| {name} | error | {c['error']} | | |")
    out += ["", "## Runs and machine load (CPU in % of one core)", "",
            "| scenario | slot | rep | wall s | server % | loadgen % | other % (max) | loadavg start → end | error |",
            "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in results["runs"]:
        ld = r.get("load") or {}
        la = f"{ld.get('loadavg_start', ['?'])[0]} → {ld.get('loadavg_end', ['?'])[0]}" if ld else ""
        err = r.get("error") or (f"skipped: {r['skipped']}" if r.get("skipped") else "")
        out.append(
            f"| {r['scenario']} | {r['slot']} | {r['rep']} | {_wall(r)} | {_fmt(ld.get('server_pct'))} | "
            f"{_fmt(ld.get('loadgen_pct'))} | {_fmt(ld.get('other_pct'))} ({_fmt(ld.get('other_max_pct'))}) | {la} | "
            f"{err[:120]} |"
        )
    for sc in SCENARIOS:
        runs = [r for r in results["runs"] if r["scenario"] == sc.name]
        if sc.details is not None and runs:
            out += ["", f"## {sc.name} {sc.title}", ""] + sc.details(runs)
    out += ["", "## What each scenario measures", ""]
    out += [f"- {' '.join(s.measures.split())}" for s in SCENARIOS]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    path = Path((argv or sys.argv[1:])[0])
    print(markdown(json.loads(path.read_text())))


if __name__ == "__main__":
    main()

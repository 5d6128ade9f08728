"""The benchmark driver: `python -m bench.run [--quick] [--scenarios S1,S2] [--reps N] ...`.

For each scenario and repetition it runs slot A then slot B (A/B/A/B...), each on a freshly
started server pinned to one core (`taskset`), with this process (the load generator) pinned to
the other. Every run is wrapped in a `LoadMonitor` (CPU of server, load generator and everything
else, loadavg) and a hard time limit. First, unless --no-ceiling, the throughput scenarios run
once against the trivial server in bench/ceiling.py to measure the load generator's own ceiling
(in full mode again at the end; the better figure is kept).
`--store-compare` measures the cost of the session store instead: A is the --a-cmd server with
`--session-store {redis}` (bench/servers.py starts a redis-server per server), B the same server
without it.
Results go to bench/results/<timestamp>.json (rewritten after every run, so a partial run keeps
its data) and bench/results/latest.md, which is also printed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import json
import os
import platform
import resource
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from bench.report import markdown, summarize
from bench.scenarios import BY_NAME, SCENARIOS
from bench.scenarios.common import Config, Scenario
from bench.servers import Slot, live_server_pids
from bench.sysload import LoadMonitor, loadavg, wait_for_quiet

RESULTS = Path(__file__).parent / "results"
QUICK_SET = "S1,S2,S3,S4,S5,S6,S7,S8,S9,S10,S11,S12,S13"
STORE_SET = "S1,S2"  # default scenarios of --store-compare


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="short windows, 1 repetition (a few minutes)")
    p.add_argument("--scenarios", default=None, help=f"comma list (default: all = {QUICK_SET})")
    p.add_argument("--reps", type=int, default=None, help="repetitions per slot (default 1 quick, 3 full)")
    p.add_argument("--a-cmd", default=f"{sys.executable} -m aperture serve", help="server command for slot A")
    p.add_argument("--b-cmd", default=None, help="server command for slot B (default: bokeh serve)")
    p.add_argument(
        "--store-compare",
        action="store_true",
        help="A = the --a-cmd server with --session-store {redis} (a fresh redis-server per server), "
        "B = the same without it; goals: S1 page views/s and S2 round trips/s at least 0.9 x store-off "
        "(default scenarios S1,S2)",
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE[,NAME=VALUE]",
        help="scenario size override, e.g. soak_users=50,soak_cycle_s=60 (S11); budget_s=SECONDS",
    )
    p.add_argument("--no-ceiling", action="store_true", help="skip the load generator ceiling measurement")
    p.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=None,
        help="before each run, wait up to this many seconds for other load to drop (default 0 quick, 15 full)",
    )
    p.add_argument(
        "--quiet-threshold", type=float, default=25.0, help="other load regarded as quiet, %% of a core"
    )
    args = p.parse_args(argv)
    args.comparison = None
    if args.store_compare:
        if args.b_cmd is not None:
            p.error("--store-compare makes slot B the --a-cmd server without a store; drop --b-cmd")
        args.a_cmd, args.b_cmd = store_compare_cmds(args.a_cmd)
        args.scenarios = args.scenarios or STORE_SET
        args.comparison = "store"
    elif args.b_cmd is None:
        args.b_cmd = f"{sys.executable} -m bokeh serve"
    return args


def store_compare_cmds(base: str) -> tuple[str, str]:
    """(store-on, store-off) server commands for `--store-compare`, from the aperture command `base`."""
    if "--session-store" in shlex.split(base):
        raise SystemExit("--store-compare adds --session-store {redis} itself; give --a-cmd without it")
    return f"{base} --session-store {{redis}}", base


def parse_params(given: list[str]) -> dict[str, str]:
    """`--param a=1,b=2 --param c=3` -> {"a": "1", "b": "2", "c": "3"}."""
    out: dict[str, str] = {}
    for item in (x for arg in given for x in arg.split(",") if x.strip()):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise SystemExit(f"--param wants NAME=VALUE, got {item!r}")
        out[name.strip()] = value.strip()
    return out


def raise_fd_limit() -> None:
    """Thousands of sockets (S3) need more than the common 1024 descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def pin_cpus() -> tuple[int | None, int | None]:
    """Pin this process to the first allowed CPU; return (loadgen cpu, server cpu)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        print("warning: fewer than 2 CPUs, no pinning; expect noisier figures", file=sys.stderr)
        return None, None
    os.sched_setaffinity(0, {cpus[0]})
    return cpus[0], cpus[1]


async def run_one(
    sc: Scenario, slot: Slot, cfg: Config, rep: int, quiet: tuple[float, float] = (0.0, 25.0)
) -> dict[str, Any]:
    gc.collect()
    rec: dict[str, Any] = {"scenario": sc.name, "slot": slot.name, "rep": rep}
    if quiet[0] > 0:
        waited, other = await asyncio.to_thread(wait_for_quiet, *quiet)
        rec["pre_run"] = {"waited_s": waited, "other_pct": other}
    t0 = time.monotonic()
    budget = float(cfg.param("budget_s", sc.budget_s[0 if cfg.quick else 1]))
    with LoadMonitor(live_server_pids) as mon:
        try:
            outcome = await asyncio.wait_for(sc.run(slot, cfg), budget)
            rec.update(metrics=outcome.metrics, info=outcome.info, skipped=outcome.skipped, error=None)
        except Exception as exc:  # a failed run is recorded, the benchmark goes on
            text = str(exc).strip()
            if isinstance(exc, TimeoutError) and not text:
                text = f"time budget of {budget:.0f}s exceeded"
            rec.update(metrics={}, info={}, skipped=None, error=f"{type(exc).__name__}: {text}")
    rec["seconds"] = round(time.monotonic() - t0, 1)
    rec["load"] = mon.report.as_dict()
    return rec


async def preflight(slot: Slot) -> str | None:
    """Start the slot's server once with the hello app; return an error text if it cannot start."""
    try:
        async with slot.serve(["hello"], timeout=60):
            return None
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).strip()[-400:]}"


def best_of(recs: list[dict[str, Any]], sc: Scenario) -> dict[str, Any]:
    """Merge ceiling runs: per metric the best value seen (the harness can do at least that)."""
    ok = [r for r in recs if r.get("metrics")]
    if not ok:
        return recs[-1]
    key = next((m for m in sc.metrics if m.ceiling), sc.metrics[0])
    top = max(ok, key=lambda r: r["metrics"].get(key.key, float("-inf")))
    merged = dict(top, metrics={}, info={})  # load figures of the run that gave the best rate
    for m in sc.metrics:
        vals = [r["metrics"][m.key] for r in ok if m.key in r["metrics"]]
        if vals:
            merged["metrics"][m.key] = min(vals) if m.better == "lower" else max(vals)
    bounds = {k for r in ok for k in (r.get("info") or {}).get("lower_bound_metrics", ())}
    merged["info"] = {"lower_bound_metrics": sorted(bounds), "runs": len(ok)}
    return merged


def _line(rec: dict[str, Any]) -> str:
    status = rec.get("error") or (f"skipped ({rec['skipped']})" if rec.get("skipped") else "ok")
    m = ", ".join(f"{k}={v:g}" for k, v in rec.get("metrics", {}).items())
    ld = rec.get("load", {})
    return (
        f"[{rec['scenario']} {rec['slot']} rep{rec['rep']}] {rec['seconds']:.0f}s {status}: {m} "
        f"(server {ld.get('server_pct', 0):.0f}%, loadgen {ld.get('loadgen_pct', 0):.0f}%, other {ld.get('other_pct', 0):.0f}%)"
    )


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    cfg = Config(quick=args.quick, params=parse_params(args.param))
    reps = args.reps or (1 if args.quick else 3)
    quiet = (
        args.quiet_wait if args.quiet_wait is not None else (0.0 if args.quick else 15.0),
        args.quiet_threshold,
    )
    names = [s.strip().upper() for s in (args.scenarios or QUICK_SET).split(",") if s.strip()]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise SystemExit(f"unknown scenario(s) {unknown}; known: {', '.join(BY_NAME)}")
    selected = [s for s in SCENARIOS if s.name in names]
    raise_fd_limit()
    lg_cpu, srv_cpu = pin_cpus()
    slots = {
        "A": Slot("A", shlex.split(args.a_cmd), srv_cpu),
        "B": Slot("B", shlex.split(args.b_cmd), srv_cpu),
    }
    ceiling_slot = Slot("ceiling", [sys.executable, "-m", "bench.ceiling", "serve"], srv_cpu)
    started = dt.datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    args.out.mkdir(parents=True, exist_ok=True)
    out_json = args.out / f"{started}.json"
    results: dict[str, Any] = {
        "started": started,
        "mode": "quick" if args.quick else "full",
        "comparison": getattr(args, "comparison", None),  # None: A/B as given; "store": store on/off
        "reps": reps,
        "scenarios": names,
        "slots": {k: {"cmd": v.cmd} for k, v in slots.items()},
        "host": {
            "cpus": os.cpu_count(),
            "loadgen_cpu": lg_cpu,
            "server_cpu": srv_cpu,
            "loadavg": loadavg(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },  # fmt: skip
        "quiet": {"max_wait_s": quiet[0], "threshold_pct": quiet[1]},
        "preflight": {},
        "ceiling": {},
        "ceiling_runs": [],
        "runs": [],
    }
    t_start = time.monotonic()

    def save() -> None:
        results["wall_s"] = round(time.monotonic() - t_start, 1)
        out_json.write_text(json.dumps(results, indent=1, default=str))

    for name, slot in slots.items():
        results["preflight"][name] = err = await preflight(slot)
        if err:
            print(f"slot {name} cannot start a server; its runs are skipped:\n  {err}", file=sys.stderr)
    ceiling_sets = [s for s in selected if s.ceiling_ok] if not args.no_ceiling else []

    async def measure_ceiling(when: str) -> None:
        for sc in ceiling_sets:
            rep = sum(1 for r in results["ceiling_runs"] if r["scenario"] == sc.name)
            rec = await run_one(sc, ceiling_slot, cfg, rep)
            rec["when"] = when
            results["ceiling_runs"].append(rec)
            results["ceiling"][sc.name] = best_of(
                [r for r in results["ceiling_runs"] if r["scenario"] == sc.name], sc
            )
            print("ceiling " + _line(rec), flush=True)
            save()

    await measure_ceiling("start")
    for sc in selected:
        for rep in range(min(reps, sc.max_reps or reps)):
            for name, slot in slots.items():
                if results["preflight"][name]:
                    rec = {"scenario": sc.name, "slot": name, "rep": rep, "metrics": {}, "seconds": 0,
                           "error": "slot unavailable (preflight failed)"}  # fmt: skip
                else:
                    rec = await run_one(sc, slot, cfg, rep, quiet)
                results["runs"].append(rec)
                print(_line(rec), flush=True)
                save()
    if not args.quick:
        await measure_ceiling("end")  # the machine's load changes; keep the better of both
    results["summary"] = summarize(results)
    save()
    md = markdown(results)
    (args.out / "latest.md").write_text(md)
    (args.out / f"{started}.md").write_text(md)
    print(md)
    print(f"results: {out_json}", file=sys.stderr)
    return results


def main(argv: list[str] | None = None) -> None:
    asyncio.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    main()

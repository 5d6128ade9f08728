"""A deliberately simple, independent page-view measurement: `python -m bench.independent`.

What a new user would write to compare two servers, sharing no client code with bench/loadgen:
Tornado's own HTTP and websocket clients. Each of `--users` virtual users loops back to back:
GET the app page (a new connection per GET, as Tornado's client does; `--keep-alive` reuses one
connection per user instead), websocket with the token, ACK, PULL-DOC-REQ -> PULL-DOC-REPLY (and
its buffers), close the websocket (`--linger end` keeps every websocket open until the run ends, so
no session is ever unused and nothing is reaped). Throughput is counted in back-to-back windows of
`--window` seconds from the first view on (`--warmup` seconds of load before the first window):
page views that complete inside a window / window length. Every window also gets the server's CPU
(its process tree, % of one core), everybody else's ("other": machine minus server minus this
process) and whether a session-reaping pass of the server was due in it (`--check-unused-sessions`,
default 17 s like both servers: passes are predicted from the server's start, marked `R`).

The summary per server: the first window (a one-shot 5 s measurement), the median of the windows
that end before the first reaping pass ("between passes"), the rate from the window with the first
pass to the end ("with reaping"), the whole run, and the server's CPU per page view over the run
(it moves much less with other load on the machine than the rates do). Each server is started
fresh, pinned with `taskset` to `--server-cpu` (default: the second allowed CPU); this process pins
itself to the first unless `--no-pin`. Servers are stopped by PID. Example:

    python -m bench.independent --app sliders --users 8 --window 5 --duration 60
    python -m bench.independent --app hello --users 32 --servers aperture,bokeh --duration 40
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shlex
import signal
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from bench.sysload import HZ, machine_busy_ticks, tree_ticks

TOKEN_RE = re.compile(r'"token"\s*:\s*"([A-Za-z0-9_.\-]+)"')
COMMANDS = {
    "aperture": f"{sys.executable} -m aperture serve",
    "bokeh": f"{sys.executable} -m bokeh serve",
}


# --------------------------------------------------------------------------------------------------
# windows (pure, unit-tested)


@dataclass
class Window:
    start: float  # seconds since the server was ready
    length: float
    views: int = 0
    latencies: list[float] = field(default_factory=list)
    server_pct: float = float("nan")
    other_pct: float = float("nan")
    reaping: bool = False

    @property
    def rate(self) -> float:
        return self.views / self.length


def reaping_passes(until: float, period: float) -> list[float]:
    """Predicted times of the server's unused-session checks (s since it was ready): every `period`
    s, both servers start the timer as they start listening."""
    if period <= 0:
        return []
    return [k * period for k in range(1, int(until // period) + 1)]


def bucket(
    completions: list[tuple[float, float]], first: float, length: float, count: int, passes: list[float]
) -> list[Window]:
    """Put (completion time, latency) pairs into `count` windows of `length` s from `first` on; a
    window is marked `reaping` if a predicted pass falls inside it (or within 1 s before its start:
    a pass takes time)."""
    wins = [Window(first + i * length, length) for i in range(count)]
    for t, lat in completions:
        i = int((t - first) // length)
        if 0 <= i < count:
            wins[i].views += 1
            wins[i].latencies.append(lat)
    for w in wins:
        w.reaping = any(w.start - 1.0 <= p < w.start + w.length for p in passes)
    return wins


def _rate(wins: list[Window]) -> float | None:
    secs = sum(w.length for w in wins)
    return round(sum(w.views for w in wins) / secs, 2) if secs else None


def summarize(wins: list[Window], first_pass: float | None) -> dict[str, Any]:
    """The first window; windows that end by the first reaping pass (`first_pass`, s since ready;
    None: no pass) - their median, i.e. "between passes"; the rate from the window in which that
    pass falls to the end ("with reaping"); the whole run; latency, CPU per view, other load."""
    if not wins:
        return {}
    cut = len(wins) if first_pass is None else sum(1 for w in wins if w.start + w.length <= first_pass)
    before, after = wins[:cut], wins[cut:]
    lat = sorted(x for w in wins for x in w.latencies)
    views = sum(w.views for w in wins)
    return {
        "first_window": round(wins[0].rate, 2),
        "median_before_first_pass": round(statistics.median(w.rate for w in before), 2) if before else None,
        "from_first_pass": _rate(after),
        "whole_run": _rate(wins),
        "windows": len(wins),
        "windows_from_first_pass": len(after),
        "p50_ms": round(1000 * lat[len(lat) // 2], 1) if lat else None,
        "max_ms": round(1000 * lat[-1], 1) if lat else None,
        "server_pct": round(statistics.fmean(w.server_pct for w in wins), 1),
        "cpu_ms_per_view": round(10 * sum(w.server_pct * w.length for w in wins) / views, 2)
        if views
        else None,
        "other_pct": round(statistics.fmean(w.other_pct for w in wins), 1),
        "other_max_pct": round(max(w.other_pct for w in wins), 1),
    }


# --------------------------------------------------------------------------------------------------
# /proc


def _own_ticks() -> int:
    t = os.times()
    return int((t.user + t.system) * HZ)


# --------------------------------------------------------------------------------------------------
# the client (Tornado)


async def _read_message(ws: WebSocketClientConnection) -> str:
    """One Bokeh message: header, metadata, content, then 2 frames per buffer; returns msgtype."""
    header = await ws.read_message()
    if header is None:
        raise ConnectionError("websocket closed")
    h = json.loads(header)
    for _ in range(2 + 2 * int(h.get("num_buffers", 0))):
        if await ws.read_message() is None:
            raise ConnectionError("websocket closed mid-message")
    return str(h["msgtype"])


class KeepAliveGet:
    """GET over one kept-alive connection (Tornado's simple client opens a new one per request)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.rw: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self, path: str) -> str:
        if self.rw is None:
            self.rw = await asyncio.open_connection(self.host, self.port)
        r, w = self.rw
        w.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode())
        head = (await r.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        m = re.search(r"content-length:\s*(\d+)", head)
        if not m:
            raise ConnectionError("no content-length")
        body = await r.readexactly(int(m.group(1)))
        if "connection: close" in head:
            w.close()
            self.rw = None
        return body.decode()

    def close(self) -> None:
        if self.rw is not None:
            self.rw[1].close()
            self.rw = None


async def page_view(
    base: str, app: str, http: AsyncHTTPClient | KeepAliveGet, keep: list[WebSocketClientConnection] | None
) -> None:
    if isinstance(http, KeepAliveGet):
        html = await http.get(f"/{app}")
    else:
        html = (await http.fetch(f"http://{base}/{app}", request_timeout=30)).body.decode()
    m = TOKEN_RE.search(html)
    if not m:
        raise ValueError("no token in page")
    req = HTTPRequest(f"ws://{base}/{app}/ws", connect_timeout=30, request_timeout=30)
    ws = await websocket_connect(req, subprotocols=["bokeh", m.group(1)])
    try:
        if await _read_message(ws) != "ACK":
            raise ConnectionError("no ACK")
        for part in ({"msgid": "1", "msgtype": "PULL-DOC-REQ"}, {}, {}):
            await ws.write_message(json.dumps(part))
        if (t := await _read_message(ws)) != "PULL-DOC-REPLY":
            raise ConnectionError(f"PULL-DOC-REQ answered by {t}")
    finally:
        if keep is None:
            ws.close()
        else:
            keep.append(ws)


async def measure(args: argparse.Namespace, base: str, pid: int, ready_mono: float) -> dict[str, Any]:
    """Run the users; sample CPU at window edges; return windows and summary."""
    completions: list[tuple[float, float]] = []
    errors: list[str] = []
    keep: list[WebSocketClientConnection] | None = [] if args.linger == "end" else None
    host, port = base.split(":")
    t_first = time.monotonic() + args.warmup
    t_end = t_first + args.duration
    count = int(args.duration // args.window)

    async def user() -> None:
        http: AsyncHTTPClient | KeepAliveGet = (
            KeepAliveGet(host, int(port)) if args.keep_alive else AsyncHTTPClient()
        )
        try:
            while (t0 := time.monotonic()) < t_end:
                try:
                    await asyncio.wait_for(page_view(base, args.app, http, keep), 30)
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    if isinstance(http, KeepAliveGet):
                        http.close()
                    await asyncio.sleep(0.1)
                    continue
                t1 = time.monotonic()
                completions.append((t1 - ready_mono, t1 - t0))
        finally:
            if isinstance(http, KeepAliveGet):
                http.close()

    async def sampler() -> list[tuple[float, int, int, int]]:
        out = []
        for i in range(count + 1):
            await asyncio.sleep(max(0.0, t_first + i * args.window - time.monotonic()))
            out.append((time.monotonic(), tree_ticks(pid), machine_busy_ticks(), _own_ticks()))
        return out

    # Tornado's client is one per event loop and runs 10 requests at a time by default: one per user.
    AsyncHTTPClient.configure(None, max_clients=max(10, args.users))
    samp = asyncio.create_task(sampler())
    await asyncio.gather(*(user() for _ in range(args.users)))
    samples = await samp
    for ws in keep or ():
        ws.close()
    passes = reaping_passes(t_end - ready_mono + 1, args.check_unused_sessions / 1000)
    wins = bucket(completions, t_first - ready_mono, args.window, count, passes)
    for w, (a, b) in zip(wins, zip(samples, samples[1:], strict=False), strict=False):
        dt = b[0] - a[0]
        server, machine, own = b[1] - a[1], b[2] - a[2], b[3] - a[3]
        w.server_pct = 100 * server / HZ / dt
        w.other_pct = max(0.0, 100 * (machine - server - own) / HZ / dt)
    summary = summarize(wins, passes[0] if passes else None)
    return {"windows": wins, "summary": summary, "errors": len(errors), "first_error": errors[:1]}


async def run_server(name: str, args: argparse.Namespace) -> dict[str, Any]:
    from bench.servers import Slot  # start/stop by PID, taskset, readiness (not measurement)

    cmd = shlex.split(COMMANDS.get(name, name))
    extra = shlex.split(args.server_args)
    if args.check_unused_sessions != 17000:
        extra += ["--check-unused-sessions", str(args.check_unused_sessions)]
    label = name if name in COMMANDS else re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")[-60:]
    slot = Slot(label, cmd, args.server_cpu)  # (the label names its log file)
    me = asyncio.current_task()
    if me is not None:  # SIGTERM cancels the run, so the server is still stopped by PID
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, me.cancel)
    t_launch = time.monotonic()
    async with slot.serve([args.app], extra, timeout=90) as srv:
        ready = time.monotonic()
        res = await measure(args, f"127.0.0.1:{srv.port}", srv.pid, ready)
    res["startup_s"] = round(ready - t_launch, 2)
    return res


def report(name: str, res: dict[str, Any]) -> str:
    s = res["summary"]
    lines = [
        f"## {name}: server started in {res['startup_s']} s, errors {res['errors']} {res['first_error']}"
    ]
    lines.append("  window (s since ready)   views/s   p50 ms   max ms  server%  other%")
    for w in res["windows"]:
        lat = sorted(w.latencies)
        p50 = 1000 * lat[len(lat) // 2] if lat else float("nan")
        mx = 1000 * lat[-1] if lat else float("nan")
        lines.append(
            f"  {w.start:6.1f}-{w.start + w.length:6.1f} {'R' if w.reaping else ' '}"
            f"        {w.rate:8.1f} {p50:8.1f} {mx:8.0f} {w.server_pct:7.0f} {w.other_pct:7.0f}"
        )
    lines.append("  " + ", ".join(f"{k}={v}" for k, v in s.items()))
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.independent", description=__doc__.split("\n\n")[0])
    p.add_argument("--servers", default="aperture,bokeh", help="comma list: aperture, bokeh or commands")
    p.add_argument("--app", default="sliders", help="an app of bench/apps (default sliders)")
    p.add_argument("--users", type=int, default=8)
    p.add_argument("--window", type=float, default=5.0, help="window length, s")
    p.add_argument("--duration", type=float, default=30.0, help="measured seconds (windows back to back)")
    p.add_argument("--warmup", type=float, default=0.0, help="seconds of load before the first window")
    p.add_argument("--keep-alive", action="store_true", help="reuse one HTTP connection per user")
    p.add_argument(
        "--linger", choices=("none", "end"), default="none", help="end: keep websockets open until the end"
    )
    p.add_argument("--check-unused-sessions", type=int, default=17000, help="ms; passed on if not 17000")
    p.add_argument("--server-args", default="", help="extra server flags, e.g. '--num-procs 2'")
    p.add_argument("--server-cpu", default=None, help="taskset CPU list for the servers")
    p.add_argument("--no-pin", action="store_true", help="do not pin this process to the first CPU")
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        help="before each server, wait up to this long for other load < 25%%",
    )
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    args = p.parse_args(argv)
    if args.duration < args.window:
        p.error("--duration must be at least one --window")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    cpus = sorted(os.sched_getaffinity(0))
    if args.server_cpu is None:
        args.server_cpu = str(cpus[1]) if len(cpus) > 1 else None
    if not args.no_pin and len(cpus) > 1:
        os.sched_setaffinity(0, {cpus[0]})
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(
        f"app={args.app} users={args.users} window={args.window}s duration={args.duration}s "
        f"warmup={args.warmup}s keep_alive={args.keep_alive} linger={args.linger} "
        f"server cpu {args.server_cpu}, client pinned: {not args.no_pin}",
        flush=True,
    )
    out: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "servers": {}}
    for name in [s.strip() for s in args.servers.split(",") if s.strip()]:
        if args.quiet_wait > 0:
            from bench.sysload import wait_for_quiet

            waited, other = wait_for_quiet(args.quiet_wait, 25.0)
            print(f"(waited {waited} s for quiet; other load {other} % of a core)", flush=True)
        res = asyncio.run(run_server(name, args))
        print(report(name, res), flush=True)
        out["servers"][name] = {**res, "windows": [w.__dict__ | {"rate": w.rate} for w in res["windows"]]}
        for w in out["servers"][name]["windows"]:
            w.pop("latencies")
    names = list(out["servers"])
    if len(names) == 2:
        a, b = (out["servers"][n]["summary"] for n in names)
        keys = ("first_window", "median_before_first_pass", "from_first_pass", "whole_run", "cpu_ms_per_view")
        ratios = {k: round(a[k] / b[k], 2) for k in keys if a.get(k) is not None and b.get(k)}
        print(f"ratio {names[0]}/{names[1]}: {ratios}")
        out["ratios"] = ratios
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()

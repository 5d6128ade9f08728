"""Measuring windows around the servers' reaping passes (S1, S12) and the independent harness."""

import asyncio
import math
from pathlib import Path

import pytest

from bench import independent
from bench.ceiling import CeilingServer, _build_app
from bench.scenarios.common import Span, closed_loop, span_figures, windows_around_reaping
from bench.scenarios.s12_machine import count_runs

APPS = Path(__file__).parents[1] / "apps"


def test_windows_around_reaping():
    steady, reaping = windows_around_reaping(1.0, 4.0, 2)
    assert steady == (1.0, 5.0)
    assert reaping == (18.0, 52.0)  # contains the checks at 34 s and 51 s, starts after the one at 17 s
    assert windows_around_reaping(3.0, 12.0, 0) == ((3.0, 15.0), None)
    with pytest.raises(ValueError):
        windows_around_reaping(3.0, 14.0, 1)  # would reach the first check


def test_span_figures():
    stamps = [(0.0, 1.0), (0.5, 1.5), (1.0, 3.0), (2.0, 4.5), (4.0, 9.0)]
    sp = Span(1.0, 5.0, cpu=(10.0, 10.3), redis_cpu=(0.0, 0.0))
    f = span_figures(stamps, sp, users=2)
    assert f["n"] == 4  # completed at 1.0, 1.5, 3.0, 4.5 (edges inclusive); not the one at 9.0
    assert f["rate"] == 1.0
    assert f["rate_little"] == pytest.approx(2 / ((1.0 + 1.0 + 2.0 + 2.5) / 4))
    assert f["cpu_ms"] == pytest.approx(75.0)
    assert f["max_ms"] == 2500.0
    empty = span_figures([], sp, users=2)
    assert empty["n"] == 0 and math.isnan(empty["rate_little"]) and math.isnan(empty["cpu_ms"])


async def test_closed_loop_stamps():
    stamps: list[tuple[float, float]] = []

    async def step(_s: int, _i: int) -> None:
        await asyncio.sleep(0.005)

    res = await closed_loop([0, 1], step, duration=0.1, max_iters=50, stamps=stamps)
    assert len(stamps) == res.completed > 0
    assert all(te >= ts for ts, te in stamps)


def test_count_runs(tmp_path):
    f = tmp_path / "runs.txt"
    assert count_runs(f) == (0, {})
    f.write_text("11 1.0\n12 2.0\n11 3.0\n")
    assert count_runs(f) == (3, {"11": 2, "12": 1})


def test_independent_windows():
    assert independent.reaping_passes(40.0, 17.0) == [17.0, 34.0]
    assert independent.reaping_passes(40.0, 0) == []
    completions = [(0.5, 0.1), (4.9, 0.1), (5.0, 0.2), (12.0, 0.3), (99.0, 0.1)]
    wins = independent.bucket(completions, 0.0, 5.0, 3, [17.0 - 5.0])  # a pass at 12 s
    assert [w.views for w in wins] == [2, 1, 1]
    assert [w.reaping for w in wins] == [False, False, True]
    for w in wins:
        w.server_pct, w.other_pct = 100.0, 5.0
    s = independent.summarize(wins, 12.0)
    assert s["first_window"] == 0.4 and s["whole_run"] == round(4 / 15, 2)
    assert s["median_before_first_pass"] == 0.3  # windows 0-5 and 5-10 end before the pass at 12 s
    assert s["from_first_pass"] == 0.2 and s["windows_from_first_pass"] == 1
    assert independent.summarize(wins, None)["from_first_pass"] is None
    assert s["cpu_ms_per_view"] == 3750.0  # 100 % of a core for 15 s / 4 views


async def test_independent_page_view_against_ceiling():
    app = _build_app(str(APPS / "sliders.py"))
    server = await asyncio.start_server(CeilingServer({app.name: app}).handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        from tornado.httpclient import AsyncHTTPClient

        await independent.page_view(f"127.0.0.1:{port}", "sliders", AsyncHTTPClient(), None)
        http = independent.KeepAliveGet("127.0.0.1", port)
        keep: list = []
        await independent.page_view(f"127.0.0.1:{port}", "sliders", http, keep)
        await independent.page_view(f"127.0.0.1:{port}", "sliders", http, keep)
        assert len(keep) == 2
        for ws in keep:
            ws.close()
        http.close()
    finally:
        server.close()
        await server.wait_closed()


def test_unpinned_restores_affinity():
    import os

    from bench.scenarios.s12_machine import unpinned

    before = os.sched_getaffinity(0)
    with unpinned() as cpus:
        assert {int(c) for c in cpus.split(",")} == os.sched_getaffinity(0)
    assert os.sched_getaffinity(0) == before


def test_ratio_when_b_served_nothing():
    import math

    from bench.report import _fmt, ratio_of

    assert ratio_of(10.0, 0.0) == math.inf and _fmt(math.inf) == "∞"
    assert ratio_of(0.0, 0.0) is None and ratio_of(None, 1.0) is None
    assert ratio_of(3.0, 2.0) == 1.5


def test_independent_main_against_two_ceiling_servers(tmp_path, capsys):
    import json
    import sys

    cmd = f"{sys.executable} -m bench.ceiling serve"
    out = tmp_path / "ind.json"
    independent.main(
        ["--servers", f"{cmd},{cmd} --second", "--app", "hello", "--users", "2", "--window", "0.5",
         "--duration", "1", "--no-pin", "--json", str(out)]
    )  # fmt: skip
    res = json.loads(out.read_text())
    assert len(res["servers"]) == 2
    for r in res["servers"].values():
        assert r["errors"] == 0 and len(r["windows"]) == 2 and r["summary"]["whole_run"] > 0
    assert set(res["ratios"]) >= {"first_window", "whole_run", "cpu_ms_per_view"}
    assert "ratio" in capsys.readouterr().out

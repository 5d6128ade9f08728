"""The report's statistics and goal checks on a synthetic results file."""

from bench.report import markdown, summarize

LOAD = {"server_pct": 90.0, "loadgen_pct": 10.0, "other_pct": 40.0, "other_max_pct": 80.0,
        "loadavg_start": [1.0], "loadavg_end": [1.0]}  # fmt: skip


def _run(slot, rep, **metrics):
    return {
        "scenario": "S2",
        "slot": slot,
        "rep": rep,
        "metrics": metrics,
        "info": {},
        "load": LOAD,
        "seconds": 5,
    }


def test_summary_ratio_goal_and_notes():
    results = {
        "started": "t", "mode": "quick", "reps": 2, "wall_s": 10,
        "slots": {"A": {"cmd": ["a"]}, "B": {"cmd": ["b"]}},
        "host": {"cpus": 2, "server_cpu": 1, "loadgen_cpu": 0, "loadavg": [1.0]},
        "ceiling": {"S2": {"metrics": {"rtt_per_s_50": 1000.0}, "info": {}, "load": LOAD}},
        "runs": [
            _run("A", 0, rtt_ms_1=10.0, rtt_per_s_50=1300.0), _run("B", 0, rtt_ms_1=9.8, rtt_per_s_50=300.0),
            _run("A", 1, rtt_ms_1=12.0, rtt_per_s_50=1200.0), _run("B", 1, rtt_ms_1=10.2, rtt_per_s_50=500.0),
        ],
    }  # fmt: skip
    rows = {r["metric"]: r for r in summarize(results)}
    rtt, rate = rows["rtt_ms_1"], rows["rtt_per_s_50"]
    assert rtt["A"] == {"median": 11.0, "min": 10.0, "max": 12.0, "n": 2}
    assert abs(rtt["ratio"] - 1.1) < 1e-9 and rtt["met"] is False
    assert rate["ratio"] == 1250 / 400 and rate["met"] is True  # goal: at least 3x
    assert any("other load" in n for n in rate["notes"])
    assert any("harness ceiling" in n for n in rate["notes"])
    md = markdown(results)
    assert "| S2 |" in md and "11.0 [10.0–12.0]" in md and "**no**" in md

"""S11's pieces that need no server: --param parsing, the size knobs, the RSS-over-time table."""

import pytest

from bench.run import parse_params
from bench.scenarios.common import Config
from bench.scenarios.s11_soak import SoakParams, details


def test_params_parse_and_size_the_soak():
    params = parse_params(["soak_users=50,soak_cycle_s=60", "soak_cycles=4"])
    assert params == {"soak_users": "50", "soak_cycle_s": "60", "soak_cycles": "4"}
    p = SoakParams.for_config(Config(quick=True, params=params))
    assert (p.cycles, p.cycle_s, p.users, p.rest_s, p.mark_s) == (4, 60.0, 50, 10.0, 30.0)
    full = SoakParams.for_config(Config(quick=False))
    assert (full.cycles, full.cycle_s, full.users, full.mark_s) == (5, 100.0, 200, 60.0)
    with pytest.raises(SystemExit):
        parse_params(["soak_users"])


def test_details_table_has_a_row_per_cycle():
    cycle = {"cycle": 1, "sessions": 10, "errors": 0, "rtt_p50_ms": 1.0, "rtt_p99_ms": 9.0,
             "rss_load_start_mib": 60.0, "rss_25pct_mib": 80.0, "rss_50pct_mib": 90.0, "rss_75pct_mib": 95.0,
             "rss_peak_mib": 99.0, "rss_rest_mib": 99.0, "stalled_at_s": None}  # fmt: skip
    runs = [
        {"slot": "A", "info": {"rss_idle_mib": 60.0, "cycles": [cycle, {**cycle, "cycle": 2}]}},
        {"slot": "B", "info": {"rss_idle_mib": 61.0, "cycles": [{**cycle, "stalled_at_s": 32.0}]}},
        {"slot": "B", "info": {}, "error": "TimeoutError: time budget of 900s exceeded"},
    ]
    rows = [line for line in details(runs) if line.startswith("| A |") or line.startswith("| B |")]
    assert len(rows) == 6
    assert "| A | 2 | 10 | 0 | 1.0 / 9.0 | 60.0 | 80.0 | 90.0 | 95.0 | 99.0 | 99.0 |" in rows
    assert any("no round trip after 32.0 s" in row for row in rows)
    assert any("time budget" in row for row in rows)

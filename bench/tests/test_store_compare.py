"""`--store-compare`: the slot commands, the `{redis}` placeholder (a real redis-server per server,
stopped by PID with it), and the report's store goals."""

import asyncio
import sys
import textwrap

import pytest

from bench.redisproc import redis_program, substitute, wants_redis
from bench.report import markdown, summarize
from bench.run import parse_args
from bench.scenarios.common import closed_loop, loop_with_cpu
from bench.servers import Slot, live_server_pids

LOAD = {"server_pct": 95.0, "loadgen_pct": 60.0, "other_pct": 3.0, "other_max_pct": 8.0,
        "loadavg_start": [1.0], "loadavg_end": [1.0]}  # fmt: skip


def test_store_compare_builds_on_and_off_commands():
    args = parse_args(["--store-compare", "--a-cmd", "py -m aperture serve --callback-threads 0"])
    assert args.a_cmd == "py -m aperture serve --callback-threads 0 --session-store {redis}"
    assert args.b_cmd == "py -m aperture serve --callback-threads 0"
    assert args.scenarios == "S1,S2" and args.comparison == "store"
    assert parse_args(["--store-compare", "--scenarios", "S4"]).scenarios == "S4"
    plain = parse_args([])
    assert plain.comparison is None and plain.b_cmd.endswith("-m bokeh serve")
    assert "{redis}" not in plain.a_cmd
    with pytest.raises(SystemExit):
        parse_args(["--store-compare", "--b-cmd", "x"])
    with pytest.raises(SystemExit):
        parse_args(["--store-compare", "--a-cmd", "aperture serve --session-store redis://h:1/0"])


def test_placeholders():
    words = ["serve", "--session-store", "{redis}", "--log", "/tmp/p-{port}.out"]
    assert wants_redis(words) and not wants_redis(["serve", "--port", "{port}"])
    assert substitute(words, {"port": "5", "redis": "redis://127.0.0.1:7/0"}) == [
        "serve", "--session-store", "redis://127.0.0.1:7/0", "--log", "/tmp/p-5.out",
    ]  # fmt: skip


def _run(slot, rep, **metrics):
    return {"scenario": "S2" if "rtt_per_s_50" in metrics else "S1", "slot": slot, "rep": rep,
            "metrics": metrics, "info": {}, "load": LOAD, "seconds": 5}  # fmt: skip


def test_report_judges_store_runs_by_the_store_goals():
    results = {
        "started": "t", "mode": "quick", "reps": 2, "wall_s": 10, "comparison": "store",
        "slots": {"A": {"cmd": ["a", "--session-store", "{redis}"]}, "B": {"cmd": ["a"]}},
        "host": {"cpus": 2, "server_cpu": 1, "loadgen_cpu": 0, "loadavg": [1.0]},
        "runs": [
            _run("A", 0, rtt_ms_1=1.0, rtt_per_s_50=1700.0), _run("B", 0, rtt_ms_1=0.9, rtt_per_s_50=1800.0),
            _run("A", 1, rtt_ms_1=1.0, rtt_per_s_50=1720.0), _run("B", 1, rtt_ms_1=0.9, rtt_per_s_50=1800.0),
            _run("A", 0, hello_rate_32=140.0, sliders_rate_32=21.0, hello_latency_ms=7.0),
            _run("B", 0, hello_rate_32=170.0, sliders_rate_32=22.0, hello_latency_ms=6.0),
        ],
    }  # fmt: skip
    rows = {r["metric"]: r for r in summarize(results)}
    assert rows["rtt_per_s_50"]["goal"] == "A/B ≥ 0.9" and rows["rtt_per_s_50"]["met"] is True
    assert rows["hello_rate_32"]["met"] is False  # 140/170 = 0.82: more than 10 % lost
    assert rows["sliders_rate_32"]["met"] is True
    assert rows["rtt_ms_1"]["goal"] == "" and rows["rtt_ms_1"]["met"] is None  # informational here
    md = markdown(results)
    assert md.startswith("# Aperture with a session store (A) vs without (B)")
    plain = {r["metric"]: r for r in summarize({**results, "comparison": None})}
    assert plain["rtt_per_s_50"]["goal"] == "A/B ≥ 2.5" and plain["rtt_per_s_50"]["met"] is False


# A stand-in server: PINGs the Redis URL it was given, then announces itself like bokeh serve.
FAKE_SERVER = textwrap.dedent("""
    import socket, sys, time
    argv = sys.argv[1:]
    url, port = argv[argv.index("--store") + 1], int(argv[argv.index("--port") + 1])
    host, rport = url.removeprefix("redis://").split("/")[0].split(":")
    with socket.create_connection((host, int(rport)), timeout=5) as r:
        r.sendall(b"PING\\r\\n")
        reply = r.recv(16).decode().strip()
    srv = socket.create_server(("127.0.0.1", port))
    print(f"redis said {reply} at {url}", flush=True)
    print(f"Bokeh app running at: http://127.0.0.1:{port}/fake", flush=True)
    deadline = time.monotonic() + 60
    srv.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            srv.accept()[0].close()
        except OSError:
            pass
""")


@pytest.mark.timeout(30)
async def test_redis_placeholder_starts_and_stops_a_redis_per_server(tmp_path):
    if redis_program() is None:
        pytest.skip("redis-server is not installed")
    script = tmp_path / "fake_server.py"
    script.write_text(FAKE_SERVER)
    slot = Slot("A", [sys.executable, str(script), "--store", "{redis}"], cpu=None, log_dir=tmp_path)
    async with slot.serve([], timeout=20) as server:
        redis = server.redis
        assert redis is not None and redis.proc.poll() is None
        assert {server.pid, redis.pid} <= live_server_pids()  # redis CPU counts as server CPU
        assert f"redis said +PONG at redis://127.0.0.1:{redis.port}/0" in server.log_path.read_text()
        directory = redis.directory
        assert directory.is_dir()
    assert redis.proc.poll() is not None  # stopped with its server, by PID
    assert redis.pid not in live_server_pids() and server.pid not in live_server_pids()
    assert not directory.exists()


class _FakeServer:
    """cpu_seconds() grows by 0.5 s per call."""

    def __init__(self):
        self.calls = 0

    def cpu_seconds(self):
        self.calls += 1
        return 0.5 * self.calls

    def redis_cpu_seconds(self):
        return 0.1 * self.calls


async def test_loop_with_cpu_divides_server_cpu_by_every_completed_step():
    async def step(_state, _i):
        await asyncio.sleep(0)

    loop = closed_loop([0, 1], step, duration=0.05, max_iters=10)
    res, per_step, redis_per_step = await loop_with_cpu(_FakeServer(), loop)
    assert res.completed == 20 and len(res.latencies) <= 20  # every step, warm-up or window
    assert per_step == 0.5 / 20 and abs(redis_per_step - 0.1 / 20) < 1e-12

"""`--metrics --num-procs 2`: one scrape, whichever worker answers, shows the whole server.

Counters are summed over the workers, live gauges over the live workers, per-worker gauges carry a
`pid` label; a killed worker's live series go away while the counts it made stay.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import time

import pytest

from aperture.peers import OWNER
from aperture.security.tokens import get_token_payload
from tests.operations.scrape import scrape, series, value, wait_for
from tests.support.wsclient import TOKEN_RE, BokehClient, fetch_token, ws_url

WORKER_LINE = r"Worker (\d) serving with process id: (\d+)"
MAX_PAGES = 40
MAX_CONNECTS = 30


@pytest.fixture(scope="module")
def server(module_server_factory):
    server = module_server_factory(["tests/apps/demo.py"], ["--num-procs", "2", "--metrics"])
    wait_for(lambda: len(set(re.findall(WORKER_LINE, server.logs()))) >= 2, timeout=20)
    return server


def worker_pids(server) -> dict[int, int]:
    return {int(n): int(pid) for n, pid in re.findall(WORKER_LINE, server.logs())}


def pages_on_both_workers(server) -> dict[int, int]:
    """Open pages until both workers built some; pages per worker. Each page comes over its own
    connection, kept open meanwhile: a worker holding more connections leaves the next to its
    sibling (see aperture/web/listener.py), whereas closed ones would all go to whichever woke first."""
    built: dict[int, int] = {}
    connections = []
    try:
        for _ in range(MAX_PAGES):
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
            connections.append(conn)
            conn.request("GET", "/demo")
            response = conn.getresponse()
            token = TOKEN_RE.search(response.read().decode("utf-8"))
            assert response.status == 200 and token
            worker = int(get_token_payload(token.group(1))[OWNER].split("|")[1])
            built[worker] = built.get(worker, 0) + 1
            if len(built) == 2 and sum(built.values()) >= 4:
                break
    finally:
        for conn in connections:
            conn.close()
    assert len(built) == 2, f"all {MAX_PAGES} pages landed on one worker: {built}"
    return built


def per_worker(samples, name) -> set[int]:
    return {int(s["pid"]) for s in series(samples, name)}


def test_one_scrape_sums_the_workers_and_a_dead_workers_live_series_go(server):
    pids = worker_pids(server)
    built = pages_on_both_workers(server)
    total = sum(built.values())
    for _ in range(6):  # new connections: the scrapes are answered by either worker
        samples = scrape(server.url("/metrics"))
        assert value(samples, "aperture_sessions_created_total", app="/demo") == total
        assert value(samples, "aperture_session_build_seconds_count", app="/demo") == total
        assert "aperture_info" in {name for name, _ in samples}

    def live_everywhere():
        samples = scrape(server.url("/metrics"))
        return value(samples, "aperture_sessions", app="/demo", state="live") == total and samples

    samples = wait_for(live_everywhere)  # each worker refreshes its gauges once a second
    assert per_worker(samples, "aperture_process_resident_memory_bytes") == set(pids.values())
    assert per_worker(samples, "aperture_event_loop_lag_max_seconds") == set(pids.values())
    assert not series(samples, "process_cpu_seconds_total")  # the collector of one process only

    victim = pids[0]
    os.kill(victim, signal.SIGKILL)

    def victim_gone():
        samples = scrape(server.url("/metrics"))
        return victim not in per_worker(samples, "aperture_process_resident_memory_bytes") and samples

    samples = wait_for(victim_gone, timeout=20)
    assert value(samples, "aperture_sessions_created_total", app="/demo") == total  # counts are kept

    def live_without_victim():
        samples = scrape(server.url("/metrics"))
        live = value(samples, "aperture_sessions", app="/demo", state="live")
        return live == total - built[0] and samples

    wait_for(live_without_victim, timeout=10)
    deadline = time.monotonic() + 20  # the supervisor restarts the worker; its series appear
    while len(worker_pids(server)) < 2 or len(re.findall(WORKER_LINE, server.logs())) < 3:
        assert time.monotonic() < deadline, server.logs()
        time.sleep(0.1)
    restarted = worker_pids(server)[0]
    wait_for(
        lambda: restarted in per_worker(scrape(server.url("/metrics")), "aperture_process_cpu_seconds"),
        timeout=20,
    )


async def test_websockets_that_land_on_the_other_worker_count_as_relayed(server):
    """Every websocket is served (and counted open) by its session's owner; the worker it landed on,
    if another, counts it relayed. Connections spread over the workers, so a few tries find one."""
    page = server.url("/demo")
    token = fetch_token(page)
    clients = []
    try:
        for _ in range(MAX_CONNECTS):
            clients.append(await BokehClient.connect(ws_url(page), token))
            samples = scrape(server.url("/metrics"))
            if value(samples, "aperture_websockets_relayed", app="/demo") >= 1:
                break
        else:
            raise AssertionError(f"none of {MAX_CONNECTS} websockets was relayed")
        assert value(samples, "aperture_websockets_open", app="/demo") == len(clients)
        reply = await clients[-1].pull()  # through the relay
        assert reply.msgtype == "PULL-DOC-REPLY"
    finally:
        for client in clients:
            await client.close()

    def all_closed():
        samples = scrape(server.url("/metrics"))
        return (
            value(samples, "aperture_websockets_relayed", app="/demo") == 0
            and value(samples, "aperture_websockets_open", app="/demo") == 0
        )

    wait_for(all_closed)

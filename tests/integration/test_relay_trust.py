"""Relay destinations come only from the deployment: attacks with crafted owner hints.

Every test plays the attacker against a real server: it mints a token whose owner hint points at
a listener of its own (any loopback port, any path, URL user-info tricks, a hint signed with the
wrong key) and checks that the server never connects there, builds the session where the
websocket landed, and says so once in its log. The `--num-procs` tests check the private channel
between workers (no extra TCP port; a 0700 directory) and that relaying keeps authentication
working with an auth module that reads any header.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
import time
from pathlib import Path

import pytest
from bokeh.util.token import generate_jwt_token, generate_session_id, get_token_payload

from aperture.security.owner_hints import sign_hint
from tests.support.listener import Listener
from tests.support.wsclient import BokehClient, Closed, fetch_token, ws_url

APPS = "tests/apps"
SHARED_KEY = "relay-trust-test-key-" + "x" * 24


@pytest.fixture
def listener():
    spy = Listener()
    yield spy
    spy.close()


def crafted_token(payload_extra: dict, session_id: str | None = None) -> str:
    """An unsigned token (default mode) with whatever owner fields the attacker chooses."""
    session_id = session_id or generate_session_id(secret_key=None, signed=False)
    return generate_jwt_token(session_id, secret_key=None, signed=False, extra_payload=payload_extra)


async def open_and_pull(url: str, token: str, headers: dict[str, str] | None = None) -> dict:
    client = await BokehClient.connect(ws_url(url), token, headers=headers)
    try:
        return (await client.pull()).content["doc"]
    finally:
        await client.close()


def victim_headers() -> dict[str, str]:
    return {"Cookie": "session=victim-secret", "Authorization": "Bearer victim-secret"}


@pytest.mark.parametrize(
    "hint",
    [
        "127.0.0.1:{port}",  # the old form: any loopback port
        "127.0.0.1:{port}/internal/admin?x=",  # path and query smuggled into the URL
        "127.0.0.1:{port}|",  # today's form, but unsigned
        "localhost:{port}|0",
        "[::1]:{port}|",
    ],
)
@pytest.mark.parametrize("procs", [1, 2])
async def test_unsigned_owner_hint_never_chooses_a_destination(server_factory, listener, hint, procs):
    server = server_factory([f"{APPS}/demo.py"], ["--num-procs", str(procs)])
    if procs > 1:
        for _ in range(procs):
            server.wait_for_log(r"Worker \d serving with process id")
    for _ in range(4 * procs):  # with workers, the websocket lands on either of them
        token = crafted_token({"__ap_owner": hint.format(port=listener.port)})
        doc = await open_and_pull(server.url("/demo"), token, headers=victim_headers())
        assert doc["roots"], "the session is built where the websocket landed"
    time.sleep(0.3)
    assert listener.received == [], f"the server connected to the attacker: {listener.received!r}"
    assert b"victim-secret" not in b"".join(listener.received)
    server.wait_for_log("Ignored an owner hint")
    assert server.running


async def test_userinfo_trick_does_not_reach_another_host(server_factory):
    try:
        spy = Listener("127.0.0.2", 80)
    except OSError as exc:  # port 80 needs privileges; the URL trick only ever reached port 80/443
        pytest.skip(f"cannot listen on 127.0.0.2:80 here: {exc}")
    try:
        server = server_factory([f"{APPS}/demo.py"])
        token = crafted_token({"__ap_owner": "127.0.0.1:@127.0.0.2/x?"})
        await open_and_pull(server.url("/demo"), token, headers=victim_headers())
        time.sleep(0.3)
        assert spy.received == []
    finally:
        spy.close()


async def test_hint_signed_with_another_key_is_ignored(server_factory, listener):
    server = server_factory([f"{APPS}/demo.py"], env={"BOKEH_SECRET_KEY": SHARED_KEY})
    session_id = generate_session_id(secret_key=None, signed=False)
    text = f"127.0.0.1:{listener.port}|"
    forged = sign_hint(b"not-the-deployment-key", "/demo", session_id, text)
    token = crafted_token({"__ap_owner": text, "__ap_owner_sig": forged}, session_id)
    await open_and_pull(server.url("/demo"), token, headers=victim_headers())
    # A genuine signature, but moved to another session or app, is refused as well.
    other_id = generate_session_id(secret_key=None, signed=False)
    moved = sign_hint(SHARED_KEY.encode(), "/demo", session_id, text)
    token = crafted_token({"__ap_owner": text, "__ap_owner_sig": moved}, other_id)
    await open_and_pull(server.url("/demo"), token, headers=victim_headers())
    time.sleep(0.3)
    assert listener.received == []
    assert len(re.findall("Ignored an owner hint", server.logs())) == 2


async def test_validly_signed_hint_still_cannot_carry_a_path(server_factory, listener):
    """Even the deployment's own key cannot make a hint name a path: the parser refuses it."""
    server = server_factory([f"{APPS}/demo.py"], env={"BOKEH_SECRET_KEY": SHARED_KEY})
    session_id = generate_session_id(secret_key=None, signed=False)
    text = f"127.0.0.1:{listener.port}/admin?x=|"
    signature = sign_hint(SHARED_KEY.encode(), "/demo", session_id, text)
    token = crafted_token({"__ap_owner": text, "__ap_owner_sig": signature}, session_id)
    await open_and_pull(server.url("/demo"), token, headers=victim_headers())
    time.sleep(0.3)
    assert listener.received == []
    server.wait_for_log("not a valid hint")


def socket_inodes(pid: int) -> set[str]:
    """Inode numbers of the sockets process `pid` holds open."""
    inodes: set[str] = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def tcp_listen_ports(pids: set[int]) -> set[int]:
    """Ports of the TCP sockets in LISTEN state held open by any of `pids`."""
    inodes = set().union(*(socket_inodes(pid) for pid in pids))
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def worker_pids(server) -> set[int]:
    return {int(pid) for pid in re.findall(r"Worker \d serving with process id: (\d+)", server.logs())}


async def test_workers_listen_only_where_the_operator_asked(server_factory, tmp_path):
    events = tmp_path / "events.txt"
    server = server_factory([f"{APPS}/hooks_app.py"], ["--num-procs", "2"], env={"HOOKS_EVENTS": str(events)})
    for _ in range(2):
        server.wait_for_log(r"Worker \d serving with process id")
    for _ in range(8):  # relays between the workers still work
        token = await asyncio.to_thread(fetch_token, server.url("/hooks_app"))
        await open_and_pull(server.url("/hooks_app"), token)
    assert len([x for x in events.read_text().splitlines() if x.startswith("run ")]) == 8
    pids = worker_pids(server) | {server.pid}
    assert tcp_listen_ports(pids) == {server.port}
    sockets = [Path(p) for pid in pids for p in _unix_socket_paths(pid)]
    assert sockets, "workers talk over Unix sockets"
    for path in sockets:
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    server.stop()
    assert not any(path.parent.exists() for path in sockets), "the private directory is removed"


def _unix_socket_paths(pid: int) -> list[str]:
    inodes = socket_inodes(pid)
    paths = []
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[6] in inodes and "aperture-workers-" in fields[7]:
            paths.append(fields[7])
    return paths


AUTH_MODULE = """
def get_user(request_handler):
    return request_handler.request.headers.get("X-Forwarded-User")

login_url = "/login"
"""


async def test_relay_between_workers_keeps_authentication(server_factory, tmp_path):
    auth = tmp_path / "proxy_auth.py"
    auth.write_text(AUTH_MODULE)
    server = server_factory([f"{APPS}/demo.py"], ["--num-procs", "2", "--auth-module", str(auth)])
    for _ in range(2):
        server.wait_for_log(r"Worker \d serving with process id")
    headers = {"X-Forwarded-User": "alice"}
    for _ in range(20):
        token = await asyncio.to_thread(fetch_token, server.url("/demo"), headers)
        try:
            await open_and_pull(server.url("/demo"), token, headers=headers)
        except Closed as closed:  # pragma: no cover - the failure this test guards against
            pytest.fail(f"websocket refused after a relay: {closed}")
    assert "relayed to its owner" in server.logs()
    # Without the header, the websocket is refused at the first hop, relayed or not.
    token = await asyncio.to_thread(fetch_token, server.url("/demo"), headers)
    client = await BokehClient.connect(ws_url(server.url("/demo")), token, wait_ack=False)
    assert (await client.closed()).code == 1008


def test_token_payload_of_a_worker_names_no_address(server_factory):
    server = server_factory([f"{APPS}/demo.py"], ["--num-procs", "2"])
    payload = get_token_payload(fetch_token(server.url("/demo")))
    assert re.fullmatch(r"\|[01]", payload["__ap_owner"]), payload["__ap_owner"]


async def test_instances_with_workers_relay_in_two_hops(server_factory, tmp_path):
    """Instance B relays to instance A's advertised address; the A worker it reaches relays on to
    the worker that built the session. The app runs once per page view."""
    events = tmp_path / "events.txt"
    env = {"HOOKS_EVENTS": str(events), "BOKEH_SECRET_KEY": SHARED_KEY}
    first = server_factory([f"{APPS}/hooks_app.py"], ["--num-procs", "2"], env=env)
    second = server_factory([f"{APPS}/hooks_app.py"], ["--num-procs", "2"], env=env)
    for server in (first, second):
        for _ in range(2):
            server.wait_for_log(r"Worker \d serving with process id")
    for _ in range(8):
        token = await asyncio.to_thread(fetch_token, first.url("/hooks_app"))
        await open_and_pull(second.url("/hooks_app"), token)
    assert len([x for x in events.read_text().splitlines() if x.startswith("run ")]) == 8
    assert f"relayed to its owner (instance 127.0.0.1:{first.port})" in second.logs()

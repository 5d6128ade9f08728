"""An expired token may only resume a session the deployment knows, never create one.

A token minted long ago (or for a session id that never existed) must be refused with 1008, as
`bokeh serve` does, so `--session-token-expiration` means what operators expect; within
`--session-reconnect-window` it may still reopen a session whose first websocket came while the
token was valid — on this process, or on a reachable owner the websocket is relayed to.
"""

from __future__ import annotations

import asyncio
import time

from bokeh.util.token import generate_jwt_token, generate_session_id

from tests.support.wsclient import BokehClient, fetch_token, ws_url

APPS = "tests/apps"
KEY = "token-lifetime-test-key-" + "y" * 20
SIGNED = {"BOKEH_SECRET_KEY": KEY, "BOKEH_SIGN_SESSIONS": "true"}


def runs(path) -> list[str]:
    return [x for x in path.read_text().splitlines() if x.startswith("run ")] if path.exists() else []


async def refused_code(url: str, token: str) -> int | None:
    client = await BokehClient.connect(ws_url(url), token, wait_ack=False)
    return (await client.closed()).code


async def connect_and_pull(url: str, token: str) -> dict:
    client = await BokehClient.connect(ws_url(url), token)
    try:
        return (await client.pull()).content["doc"]
    finally:
        await client.close()


async def test_long_expired_signed_token_for_an_unknown_session_is_refused(server_factory, tmp_path):
    events = tmp_path / "events.txt"
    server = server_factory([f"{APPS}/hooks_app.py"], env={**SIGNED, "HOOKS_EVENTS": str(events)})
    session_id = generate_session_id(secret_key=KEY.encode(), signed=True)
    token = generate_jwt_token(
        session_id,
        secret_key=KEY.encode(),
        signed=True,
        extra_payload={"headers": {"X-Auth-User": "admin"}, "cookies": {"role": "admin"}},
        expiration=-3600,  # minted by an auth service an hour ago
    )
    assert await refused_code(server.url("/hooks_app"), token) == 1008
    assert runs(events) == [], "the app must not run for an expired token"
    server.wait_for_log("Refused an expired token")
    # The server is unharmed: a fresh page works.
    await connect_and_pull(server.url("/hooks_app"), fetch_token(server.url("/hooks_app")))


async def test_expired_unsigned_token_for_an_unknown_session_is_refused(server_factory, tmp_path):
    events = tmp_path / "events.txt"
    server = server_factory([f"{APPS}/hooks_app.py"], env={"HOOKS_EVENTS": str(events)})
    token = generate_jwt_token(generate_session_id(signed=False), signed=False, expiration=-60)
    assert await refused_code(server.url("/hooks_app"), token) == 1008
    assert runs(events) == []


async def test_first_websocket_with_an_expired_token_is_refused(server_factory, tmp_path):
    events = tmp_path / "events.txt"
    server = server_factory(
        [f"{APPS}/hooks_app.py"], ["--session-token-expiration", "1"], env={"HOOKS_EVENTS": str(events)}
    )
    token = fetch_token(server.url("/hooks_app"))  # the page built the session; nothing opened it
    await asyncio.sleep(2.2)
    assert await refused_code(server.url("/hooks_app"), token) == 1008


async def test_expired_token_resumes_the_session_it_opened(server_factory, tmp_path):
    events = tmp_path / "events.txt"
    server = server_factory(
        [f"{APPS}/hooks_app.py"], ["--session-token-expiration", "2"], env={"HOOKS_EVENTS": str(events)}
    )
    token = fetch_token(server.url("/hooks_app"))
    before = await connect_and_pull(server.url("/hooks_app"), token)
    await asyncio.sleep(3.2)  # the token is now expired; the page reconnects with it
    after = await connect_and_pull(server.url("/hooks_app"), token)
    assert after == before and len(runs(events)) == 1
    server.wait_for_log("Accepted an expired token to resume session")


async def test_expired_token_resumes_only_while_its_owner_lives(server_factory, tmp_path):
    events = tmp_path / "events.txt"
    env = {"BOKEH_SECRET_KEY": KEY, "HOOKS_EVENTS": str(events)}
    args = ["--session-token-expiration", "2"]
    owner = server_factory([f"{APPS}/hooks_app.py"], args, env=env)
    other = server_factory([f"{APPS}/hooks_app.py"], args, env=env)
    token = fetch_token(owner.url("/hooks_app"))
    await connect_and_pull(owner.url("/hooks_app"), token)
    await asyncio.sleep(3.2)
    await connect_and_pull(other.url("/hooks_app"), token)  # relayed to the owner, which vouches
    other.wait_for_log("relayed to its owner")
    assert len(runs(events)) == 1
    owner.stop()
    started = time.monotonic()
    assert await refused_code(other.url("/hooks_app"), token) == 1008  # nobody can vouch any more
    assert time.monotonic() - started < 10
    assert len(runs(events)) == 1

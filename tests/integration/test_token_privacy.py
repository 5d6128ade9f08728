"""Tokens carry no credentials, forged request context is ignored, expired tokens reconnect."""

from __future__ import annotations

import json

import pytest

from aperture.security import tokens
from tests.support.wsclient import BokehClient, Closed, fetch_token, ws_url

APPS = "tests/apps"
SECRET = "Jx8mQ2vR5tY9wE3uI7oP1aS6dF4gH0jK2lZ8xC5vB3nM"


@pytest.fixture(scope="module")
def server(module_server_factory):
    return module_server_factory([f"{APPS}/context.py"])


async def info_of(client: BokehClient) -> dict:
    doc = (await client.pull()).content["doc"]
    [div] = [r for r in doc["roots"] if r["attributes"].get("name") == "info"]
    return json.loads(div["attributes"]["text"])


async def test_forged_context_in_an_unsigned_token_is_ignored(server):
    forged = tokens.generate_token(
        "forged-session-1",
        extra={"headers": {"X-Forged": "yes"}, "cookies": {"session": "admin"}, "arguments": {}},
    )
    page = server.url("/context")
    client = await BokehClient.connect(ws_url(page), forged, headers={"Cookie": "session=real-user"})
    info = await info_of(client)
    await client.close()
    assert info["cookies"] == {"session": "real-user"}  # what the browser really sent
    assert "X-Forged" not in info["headers"]


async def test_expired_token_reconnects_within_the_window(server):
    page = server.url("/context")
    valid = tokens.generate_token("old-page-1", expiration=300)
    client = await BokehClient.connect(ws_url(page), valid)  # the page opened its session in time
    await client.close()
    expired = tokens.generate_token("old-page-1", expiration=300, now=tokens.utc_now() - 3600)
    client = await BokehClient.connect(ws_url(page), expired)
    assert (await info_of(client))["id"] == "old-page-1"
    await client.close()


async def test_expired_token_beyond_the_window_is_refused(server_factory):
    server = server_factory([f"{APPS}/context.py"], ["--session-reconnect-window", "60"])
    page = server.url("/context")
    expired = tokens.generate_token("old-page-2", expiration=300, now=tokens.utc_now() - 3600)
    client = await BokehClient.connect(ws_url(page), expired, wait_ack=False)
    closed = await client.closed()
    assert isinstance(closed, Closed) and closed.code == 1008 and closed.reason == "token has expired"


async def test_signed_external_token_context_is_trusted(server_factory):
    env = {"BOKEH_SIGN_SESSIONS": "yes", "BOKEH_SECRET_KEY": SECRET}
    server = server_factory([f"{APPS}/context.py"], env=env)
    secret = SECRET.encode()
    session_id = tokens.generate_session_id(secret, signed=True)
    minted = tokens.generate_token(
        session_id,
        secret=secret,
        signed=True,
        extra={"headers": {"X-Custom": "from-auth-service"}, "cookies": {"user": "alice"}, "arguments": {}},
    )
    client = await BokehClient.connect(ws_url(server.url("/context")), minted)
    info = await info_of(client)
    await client.close()
    assert info["cookies"] == {"user": "alice"}
    assert info["headers"]["X-Custom"] == "from-auth-service"


def test_page_token_is_small_and_credential_free(server):
    import urllib.request

    request = urllib.request.Request(
        server.url("/context"), headers={"Cookie": "sid=" + "s" * 3000, "Authorization": "Basic dXNlcjpwYXNz"}
    )
    with urllib.request.urlopen(request, timeout=20) as response:
        html = response.read().decode()
    token = fetch_token.__globals__["TOKEN_RE"].search(html).group(1)
    payload = tokens.get_token_payload(token)
    assert set(payload) <= {"session_expiry", "arguments", "__ap_owner", "__ap_owner_sig"}
    assert len(token) < 400

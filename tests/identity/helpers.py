"""What the identity tests share: the app, reading pages and documents, a signed-in websocket."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Coroutine
from typing import Any, TypeVar

from aperture.identity import flow
from tests.support.oidc import Reply, SignInClient
from tests.support.servers import REPO_ROOT, ServerProcess
from tests.support.wsclient import TOKEN_RE, BokehClient, document_objects, model_changed, model_id, ws_url

T = TypeVar("T")
WHOAMI = REPO_ROOT / "tests" / "identity" / "apps" / "whoami"
ALLOW_SELF = "--allow-websocket-origin=127.0.0.1:{port}"
PROVIDER_COOKIE = re.compile(r"^op_")  # the provider's own cookies (tests/identity/provider)
SESSION_COOKIE = flow.SESSION_COOKIE  # Aperture's cookie names
FLOW_COOKIE_PREFIX = flow.FLOW_COOKIE_PREFIX
REFUSAL_LOG = r"OpenID Connect sign-in refused: [^\n]+"


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def aperture_cookies(client: SignInClient) -> dict[str, Any]:
    """The client's cookies that Aperture set (every one but the provider's)."""
    return {cookie.name: cookie for cookie in client.jar if not PROVIDER_COOKIE.match(cookie.name)}


def set_cookie_lines(hops: list[Reply], server: ServerProcess) -> list[str]:
    """Every Set-Cookie header Aperture (not the provider) sent on the way."""
    return [line for reply in hops if reply.url.startswith(server.base_url) for line in reply.set_cookies()]


def page_token(reply: Reply) -> str:
    match = TOKEN_RE.search(reply.body)
    assert match, f"no session token in the page from {reply.url} ({reply.status}):\n{reply.body[:500]}"
    return match.group(1)


def div_texts(document: dict[str, Any]) -> dict[str, str]:
    """The ``text`` of every named Div in a pulled document."""
    return {
        node["attributes"]["name"]: node["attributes"].get("text", "")
        for node in document_objects(document)
        if node.get("name") == "Div"
        and isinstance(node.get("attributes"), dict)
        and "name" in node["attributes"]
    }


async def open_websocket(client: SignInClient, url: str, token: str) -> BokehClient:
    """The page's websocket with the client's cookies (as a browser sends them); waits for the ACK."""
    return await BokehClient.connect(ws_url(url), token, headers={"Cookie": client.cookie_header(url)})


async def slider_round_trip(ws: BokehClient, value: int) -> dict[str, Any]:
    """PULL-DOC, then move the slider: its Python callback answers ``value=<value>``; the document."""
    document = (await ws.pull()).content
    slider = model_id(document, "slider")
    ok, before = await ws.reply_to(await ws.send("PATCH-DOC", model_changed(slider, "value", value)))
    assert ok.msgtype == "OK", ok.header
    assert before[0].content["events"][0]["new"] == f"value={value}"
    return dict(document)


def assert_refusal_page(reply: Reply, *, status: int = 403, secrets: tuple[str, ...] = ()) -> None:
    """A short, plain page: sign-in refused, a link to try again, no traceback, no token."""
    assert reply.status == status, (reply.status, reply.url, reply.body[:800])
    body = reply.body
    assert "refused" in body.lower(), body[:800]
    assert "/oidc/login" in body, body[:800]
    assert "Traceback" not in body and 'File "' not in body, body[:2000]
    assert "eyJ" not in body, "a JWT is on the refusal page"
    for secret in secrets:
        assert secret not in body
    assert len(body) < 8000

"""The sign-in endpoints of an in-process server, against the in-memory issuer served over HTTP.

One server and one issuer for the module (the tests don't interfere: each keeps its own cookies).
This checks the web layer: redirects, cookies and their attributes, refusal pages, what apps see.
The certified provider, several instances and the browser are in the end-to-end tests.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import pytest_asyncio
from bokeh.application import Application
from bokeh.application.handlers.function import FunctionHandler
from bokeh.application.handlers.handler import Handler
from bokeh.models import Div
from tornado import httpserver, netutil, web
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from aperture.config import resolve
from aperture.operations.observer import Observer
from aperture.server import Server
from tests.identity.local_issuer import CLIENT_ID, CLIENT_SECRET, LocalIssuer
from tests.support.wsclient import TOKEN_RE, BokehClient

SEEN: list[tuple[Any, Any]] = []  # (request.user, request.claims) of each session the app built
HOOKED: list[Any] = []  # request.user as on_session_created saw it


class ErrorKinds(Observer):
    """The error kinds the server reports (what the metrics count)."""

    def __init__(self) -> None:
        self.kinds: list[str] = []

    def error(self, kind: str) -> None:
        self.kinds.append(kind)


def make_doc(doc: Any) -> None:
    request = doc.session_context.request
    SEEN.append((request.user, request.claims))
    doc.add_root(Div(text="signed in"))


class SessionHook(Handler):
    """An app's `on_session_created`, which sees who signed in too."""

    def modify_document(self, doc: Any) -> None:
        pass

    async def on_session_created(self, session_context: Any) -> None:
        HOOKED.append(session_context.request.user)


class IssuerHandler(web.RequestHandler):
    def initialize(self, issuer: LocalIssuer) -> None:
        self.issuer = issuer

    async def _serve(self) -> None:
        url = self.issuer.issuer + self.request.path.removeprefix("/realm")
        answer = await self.issuer.request(
            self.request.method or "GET", url, headers=dict(self.request.headers), body=self.request.body
        )
        self.set_status(answer.status)
        self.set_header("Content-Type", "application/json")
        self.finish(answer.body)

    get = post = _serve


class Browser:
    """Cookies kept between requests, redirects not followed."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookies: dict[str, str] = {}
        self.client = AsyncHTTPClient(force_instance=True)

    async def get(self, path: str, headers: dict[str, str] | None = None) -> HTTPResponse:
        url = path if path.startswith("http") else self.base + path
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        response = await self.client.fetch(url, headers=headers, follow_redirects=False, raise_error=False)
        for line in response.headers.get_list("Set-Cookie"):
            for name, morsel in SimpleCookie(line).items():
                if morsel["max-age"] == "0" or "1970" in morsel["expires"] or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return response


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def deployment() -> AsyncIterator[tuple[Server, LocalIssuer]]:
    sockets = netutil.bind_sockets(0, "127.0.0.1")
    port = sockets[0].getsockname()[1]
    issuer = LocalIssuer(issuer=f"http://127.0.0.1:{port}/realm")
    issuer.document.update(
        authorization_endpoint=issuer.issuer + "/auth",
        token_endpoint=issuer.issuer + "/token",
        jwks_uri=issuer.issuer + "/jwks",
        end_session_endpoint=issuer.issuer + "/logout",
    )
    http = httpserver.HTTPServer(web.Application([(r"/realm/.*", IssuerHandler, {"issuer": issuer})]))
    http.add_sockets(sockets)
    server = instance(issuer, oidc_pass_claims=["email"])
    server.core.observer.add(ErrorKinds())
    await server.start()
    try:
        yield server, issuer
    finally:
        await server.stop()
        http.stop()


pytestmark = pytest.mark.asyncio(loop_scope="module")


def instance(issuer: LocalIssuer, **flags: Any) -> Server:
    """An in-process server signing in with `issuer`; all share one deployment key."""
    options = {"port": 0, "address": "127.0.0.1", "oidc_issuer": issuer.issuer, "oidc_client_id": CLIENT_ID}
    config = resolve(
        {**options, **flags}, {"APERTURE_OIDC_CLIENT_SECRET": CLIENT_SECRET, "BOKEH_SECRET_KEY": "k" * 44}
    )
    return Server({"/app": Application(FunctionHandler(make_doc), SessionHook())}, config=config)


def location(response: HTTPResponse) -> str:
    assert response.code == 302, (response.code, response.body[:300])
    return response.headers["Location"]


async def sign_in(server: Server, issuer: LocalIssuer, next_path: str = "/app", **claims: Any) -> Browser:
    browser = Browser(f"http://127.0.0.1:{server.port}")
    login = location(await browser.get("/oidc/login?" + urlencode({"next": next_path})))
    code, state = issuer.authorize(login, **claims)
    browser.callback = await browser.get("/oidc/callback?" + urlencode({"code": code, "state": state}))  # type: ignore[attr-defined]
    return browser


async def test_an_anonymous_page_is_sent_to_sign_in(deployment):
    server, _ = deployment
    browser = Browser(f"http://127.0.0.1:{server.port}")
    assert location(await browser.get("/app?x=1")) == "/oidc/login?" + urlencode({"next": "/app?x=1"})
    assert location(await browser.get("/app/metadata")).startswith("/oidc/login?")
    assert location(await browser.get("/app/autoload.js?bokeh-autoload-element=x")).startswith("/oidc/login?")
    assert (await browser.get("/healthz")).code == 200


async def test_sign_in_sets_a_sealed_cookie_and_returns_to_the_page(deployment):
    server, issuer = deployment
    browser = Browser(f"http://127.0.0.1:{server.port}")
    login = await browser.get("/oidc/login?next=%2Fapp%3Fx%3D1")
    target = location(login)
    assert target.startswith(issuer.issuer + "/auth?")
    flow_cookie = login.headers["Set-Cookie"]
    assert "HttpOnly" in flow_cookie and "SameSite=Lax" in flow_cookie and "Path=/" in flow_cookie
    code, state = issuer.authorize(target)
    query = parse_qs(urlsplit(target).query)
    assert query["redirect_uri"] == [f"http://127.0.0.1:{server.port}/oidc/callback"]
    callback = await browser.get("/oidc/callback?" + urlencode({"code": code, "state": state}))
    assert location(callback) == "/app?x=1"
    session_cookie = next(
        line for line in callback.headers.get_list("Set-Cookie") if line.startswith("aperture_oidc=")
    )
    assert "HttpOnly" in session_cookie and "SameSite=Lax" in session_cookie and len(session_cookie) < 4096
    assert "alice" not in session_cookie
    assert list(browser.cookies) == ["aperture_oidc"]  # the flow cookie was cleared
    SEEN.clear()
    HOOKED.clear()
    page = await browser.get("/app?x=1")
    assert page.code == 200
    assert SEEN == [("alice", {"preferred_username": "alice", "email": "alice@example.com"})]
    assert HOOKED == ["alice"]
    assert b"alice" not in page.body  # nothing about the user in the page's token


async def test_a_replayed_callback_gets_a_refusal_page_and_a_log_line(deployment, caplog):
    server, issuer = deployment
    browser = Browser(f"http://127.0.0.1:{server.port}")
    target = location(await browser.get("/oidc/login?next=/app"))
    code, state = issuer.authorize(target)
    callback = "/oidc/callback?" + urlencode({"code": code, "state": state})
    assert location(await browser.get(callback)) == "/app"
    errors = next(o for o in server.core.observer if isinstance(o, ErrorKinds))
    counted = errors.kinds.count("oidc")
    with caplog.at_level(logging.WARNING, logger="aperture.identity"):
        again = await browser.get(callback)
    assert again.code == 403 and errors.kinds.count("oidc") == counted + 1
    assert (
        b"Sign-in refused" in again.body
        and b"/oidc/login?next=" in again.body
        and b"Traceback" not in again.body
    )
    assert any("OpenID Connect sign-in refused: " in record.getMessage() for record in caplog.records)


async def test_a_malformed_callback_is_400(deployment):
    server, _ = deployment
    browser = Browser(f"http://127.0.0.1:{server.port}")
    response = await browser.get("/oidc/callback?code=x")
    assert response.code == 400 and b"Sign-in refused" in response.body


async def test_a_provider_error_is_refused(deployment):
    server, _ = deployment
    browser = Browser(f"http://127.0.0.1:{server.port}")
    response = await browser.get("/oidc/callback?error=access_denied&state=" + "s" * 32)
    assert response.code == 403 and b"access_denied" in response.body


async def test_an_open_redirect_through_next_goes_home_instead(deployment, caplog):
    server, issuer = deployment
    with caplog.at_level(logging.WARNING, logger="aperture.identity"):
        browser = await sign_in(server, issuer, next_path="//evil.example.com/")
    assert location(browser.callback) == "/"  # type: ignore[attr-defined]
    assert any("not returning to" in record.getMessage() for record in caplog.records)


async def test_a_tampered_or_foreign_cookie_is_not_a_sign_in(deployment):
    server, issuer = deployment
    browser = await sign_in(server, issuer)
    value = browser.cookies["aperture_oidc"]
    for bad in (value[:-3] + "AAA", "v1.garbage", "alice"):
        browser.cookies["aperture_oidc"] = bad
        response = await browser.get("/app")
        assert location(response).startswith("/oidc/login?")
        assert "aperture_oidc" not in browser.cookies  # cleared


async def test_logout_clears_the_cookie_and_ends_the_provider_session(deployment):
    server, issuer = deployment
    browser = await sign_in(server, issuer)
    target = location(await browser.get("/oidc/logout"))
    assert target.startswith(issuer.issuer + "/logout?")
    query = parse_qs(urlsplit(target).query)
    assert query["post_logout_redirect_uri"] == [f"http://127.0.0.1:{server.port}/"]
    assert "id_token_hint" in query and "aperture_oidc" not in browser.cookies
    assert location(await browser.get("/app")).startswith("/oidc/login?")


async def test_a_user_without_name_claims_is_named_by_subject(deployment):
    server, issuer = deployment
    SEEN.clear()
    browser = await sign_in(server, issuer, preferred_username=None, email=None)
    assert location(browser.callback) == "/app"  # type: ignore[attr-defined]
    assert (await browser.get("/app")).code == 200
    assert SEEN == [("user-1", {"sub": "user-1"})]


async def websocket(server: Server, browser: Browser | None) -> BokehClient:
    headers = {"Cookie": f"aperture_oidc={browser.cookies['aperture_oidc']}"} if browser else {}
    token = TOKEN_RE.search(
        (await (browser or Browser("")).get(f"http://127.0.0.1:{server.port}/app")).body.decode()
    )
    return await BokehClient.connect(
        f"ws://127.0.0.1:{server.port}/app/ws",
        token.group(1) if token else "x",
        headers=headers,
        wait_ack=False,
    )


async def test_a_signed_in_websocket_opens_and_an_anonymous_one_is_refused(deployment):
    server, issuer = deployment
    browser = await sign_in(server, issuer)
    client = await websocket(server, browser)
    assert (await client.recv()).msgtype == "ACK"
    await client.close()
    anonymous = await websocket(server, None)
    closed = await anonymous.closed()
    assert (closed.code, closed.reason) == (1008, "authentication required")


async def test_a_websocket_whose_sign_in_ends_is_closed_with_a_reason(deployment):
    server, issuer = deployment
    issuer.token_lifetime, issuer.refuse_refresh = 2, True
    try:
        browser = await sign_in(server, issuer)
        client = await websocket(server, browser)
        assert (await client.recv()).msgtype == "ACK"
        closed = await client.closed(timeout=15)
    finally:
        issuer.token_lifetime, issuer.refuse_refresh = 300, False
    assert (closed.code, closed.reason) == (1008, "sign-in expired; reload the page to sign in again")


async def test_a_sign_in_begun_on_one_instance_finishes_on_another(deployment):
    _, issuer = deployment
    shared = {"oidc_redirect_url": "http://apps.test/oidc/callback"}
    one, two = instance(issuer, **shared), instance(issuer, **shared)
    await one.start()
    await two.start()
    try:
        browser = Browser(f"http://127.0.0.1:{one.port}")
        code, state = issuer.authorize(location(await browser.get("/oidc/login?next=/app")))
        other = f"http://127.0.0.1:{two.port}"
        assert location(
            await browser.get(f"{other}/oidc/callback?" + urlencode({"code": code, "state": state}))
        )
        assert (await browser.get("/app")).code == 200  # back on the first instance
        assert (await browser.get(f"{other}/app")).code == 200
    finally:
        await one.stop()
        await two.stop()


async def test_under_a_prefix_behind_an_https_proxy(deployment):
    _, issuer = deployment
    server = instance(issuer, prefix="/pfx", use_xheaders=True, oidc_allowed_groups=["admins"])
    await server.start()
    try:
        browser = Browser(f"http://127.0.0.1:{server.port}")
        assert location(await browser.get("/pfx/app")) == "/pfx/oidc/login?next=%2Fpfx%2Fapp"
        login = await browser.get("/pfx/oidc/login?next=/pfx/app", headers={"X-Forwarded-Proto": "https"})
        flow_cookie = login.headers["Set-Cookie"]
        assert "Secure" in flow_cookie and "Path=/pfx" in flow_cookie
        query = parse_qs(urlsplit(location(login)).query)
        assert query["redirect_uri"] == [f"https://127.0.0.1:{server.port}/pfx/oidc/callback"]
        code, state = issuer.authorize(location(login))  # alice is in "staff", not "admins"
        refused = await browser.get(
            "/pfx/oidc/callback?" + urlencode({"code": code, "state": state}),
            headers={"X-Forwarded-Proto": "https"},
        )
        assert refused.code == 403 and b"none of the groups" in refused.body
        assert b'href="/pfx/oidc/login?next=%2Fpfx%2F"' in refused.body
    finally:
        await server.stop()

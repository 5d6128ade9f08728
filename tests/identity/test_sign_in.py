"""Signing in with a real OpenID Connect provider, driven over HTTP: redirects, login form, app.

One ``oidc-provider`` and one Aperture server (``--oidc-issuer``) serve the whole module. A
``SignInClient`` (a cookie jar, redirects followed one at a time, the provider's login form
posted) opens the app page, goes through Aperture's redirect to the provider, signs in and lands
back on the page; the page's websocket then works with those cookies, and the app and its
``on_session_created`` hook see the user and the claims passed on.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from tests.identity.helpers import (
    ALLOW_SELF,
    WHOAMI,
    aperture_cookies,
    div_texts,
    open_websocket,
    page_token,
    run,
    set_cookie_lines,
    slider_round_trip,
)
from tests.support.oidc import OidcProvider, SignInClient, aperture_args, aperture_env
from tests.support.servers import ServerProcess
from tests.support.wsclient import BokehClient, Closed, ws_url

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def hook_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hooks") / "sessions.jsonl"


@pytest.fixture(scope="module")
def server(module_server_factory: Any, provider: OidcProvider, hook_file: Path) -> ServerProcess:
    args = aperture_args(provider, "--oidc-pass-claims", "email", "groups", ALLOW_SELF)
    started = module_server_factory(
        [WHOAMI], args, env=aperture_env(APERTURE_IDENTITY_HOOK_FILE=str(hook_file))
    )
    provider.allow(started.base_url)
    return started


def test_sign_in_goes_through_the_provider_and_lands_on_the_page(
    server: ServerProcess, provider: OidcProvider
) -> None:
    client = SignInClient()
    page = client.sign_in(server.url("/whoami?tab=2"))
    assert page.status == 200, (page.status, page.body[:500])
    assert page.url == server.url("/whoami?tab=2")
    page_token(page)
    assert client.logins == 1

    steps = [(reply.status, reply.url) for reply in client.hops]
    first = client.hops[0]
    assert first.status == 302, steps
    assert first.location == server.url("/oidc/login?next=" + urllib.parse.quote("/whoami?tab=2", safe="")), (
        steps
    )
    to_provider = client.hops[1]
    assert to_provider.status == 302 and to_provider.location is not None, steps
    authorize = urllib.parse.urlsplit(to_provider.location)
    assert f"{authorize.scheme}://{authorize.netloc}" == provider.issuer
    query = urllib.parse.parse_qs(authorize.query)
    assert query["response_type"] == ["code"]
    assert query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"] == [server.url("/oidc/callback")]
    assert "openid" in query["scope"][0].split()
    assert len(query["state"][0]) >= 16 and len(query["nonce"][0]) >= 16
    assert len(query["code_challenge"][0]) == 43  # base64url of a SHA-256 digest
    callbacks = [reply for reply in client.hops if reply.url.startswith(server.url("/oidc/callback"))]
    assert len(callbacks) == 1 and callbacks[0].status == 302, steps

    # Every cookie Aperture set is HttpOnly, SameSite=Lax, not Secure over plain http, under 4 KB.
    lines = set_cookie_lines(client.hops, server)
    assert lines, steps
    for line in lines:
        attributes = {part.strip().split("=")[0].lower() for part in line.split(";")[1:]}
        assert "httponly" in attributes, line
        assert re.search(r";\s*SameSite=Lax", line, re.IGNORECASE), line
        assert "secure" not in attributes, line
        assert len(line) < 4096, len(line)
    # The flow cookie is gone once used: what is left is the sign-in.
    assert len(aperture_cookies(client)) == 1, sorted(aperture_cookies(client))
    # Nothing of the tokens is readable in the cookie: it is sealed, not signed-only.
    (session,) = aperture_cookies(client).values()
    assert "alice" not in session.value and "eyJ" not in session.value


def test_the_page_websocket_works_with_the_sign_in_cookie(server: ServerProcess) -> None:
    client = SignInClient()
    url = server.url("/whoami")
    token = page_token(client.sign_in(url, user="bob"))

    async def round_trip() -> dict[str, Any]:
        ws = await open_websocket(client, url, token)
        try:
            return await slider_round_trip(ws, 7)
        finally:
            await ws.close()

    document = run(round_trip())
    texts = div_texts(document)
    assert texts["user"] == "user=bob"
    claims = json.loads(texts["claims"])
    assert claims["email"] == "bob@example.test"
    assert claims["groups"] == ["staff"]
    assert claims.get("preferred_username") == "bob"  # the user claim is always passed on
    assert "name" not in claims and "nonce" not in claims  # only the claims the operator chose


def test_websocket_without_the_sign_in_cookie_is_refused(server: ServerProcess) -> None:
    client = SignInClient()
    url = server.url("/whoami")
    token = page_token(client.sign_in(url))

    async def refused() -> Closed:
        ws = await BokehClient.connect(ws_url(url), token, wait_ack=False)
        return await ws.closed(timeout=10)

    closed = run(refused())
    assert closed.code == 1008 and closed.reason == "authentication required", closed


def test_on_session_created_hook_sees_the_user(server: ServerProcess, hook_file: Path) -> None:
    client = SignInClient()
    page = client.sign_in(server.url("/whoami"), user="alice")
    assert page.status == 200
    lines = [json.loads(line) for line in hook_file.read_text(encoding="utf-8").splitlines()]
    alice = [line for line in lines if line["user"] == "alice"]
    assert alice, lines
    assert alice[-1]["claims"]["groups"] == ["staff", "admins"]
    assert alice[-1]["claims"]["email"] == "alice@example.test"


def test_anonymous_requests_are_sent_to_sign_in_and_health_stays_open(server: ServerProcess) -> None:
    client = SignInClient()
    for path in ("/whoami", "/whoami/autoload.js?bokeh-autoload-element=x", "/whoami/metadata"):
        reply = client.get(server.url(path))
        assert reply.status == 302, (path, reply.status)
        assert reply.location is not None
        assert reply.location.startswith(server.url("/oidc/login?next=")), (path, reply.location)
    for path in ("/healthz", "/readyz"):
        assert client.get(server.url(path)).status == 200, path
    assert client.request(server.url("/whoami"), data={"x": "1"}).status in (403, 405)  # never a page


def test_the_session_token_pages_can_read_holds_no_identity(server: ServerProcess) -> None:
    """Page scripts read the Bokeh session token: neither the sealed cookie nor any claim is in it."""
    from bokeh.util.token import get_token_payload

    client = SignInClient()
    page = client.sign_in(server.url("/whoami"))
    payload = json.dumps(get_token_payload(page_token(page)))
    for cookie in aperture_cookies(client).values():
        assert cookie.value not in payload, f"the sign-in cookie {cookie.name} is in the session token"
    assert "alice@example.test" not in payload
    assert "eyJ" not in payload  # no JWT (id_token) either


def test_a_signed_in_client_is_not_asked_again(server: ServerProcess) -> None:
    client = SignInClient()
    assert client.sign_in(server.url("/whoami")).status == 200
    again = client.get(server.url("/whoami"))
    assert again.status == 200
    page_token(again)
    assert client.logins == 1


@pytest.fixture(scope="module")
def prefixed(module_server_factory: Any, provider: OidcProvider) -> ServerProcess:
    args = aperture_args(provider, "--prefix", "/dash", ALLOW_SELF)
    started = module_server_factory([WHOAMI], args, env=aperture_env())
    provider.allow(started.base_url, prefix="/dash")
    return started


def test_under_a_prefix_everything_stays_under_it(prefixed: ServerProcess, provider: OidcProvider) -> None:
    client = SignInClient()
    page = client.sign_in(prefixed.url("/dash/whoami"))
    assert page.status == 200 and page.url == prefixed.url("/dash/whoami"), (page.status, page.url)
    page_token(page)
    paths = [urllib.parse.urlsplit(r.url).path for r in client.hops if r.url.startswith(prefixed.base_url)]
    assert "/dash/oidc/login" in paths and "/dash/oidc/callback" in paths, paths
    for line in set_cookie_lines(client.hops, prefixed):
        assert re.search(r";\s*Path=/dash(;|$)", line, re.IGNORECASE), line

    # A return path that would leave the server lands on the prefix's root instead.
    other = SignInClient()
    other.sign_in(prefixed.url("/dash/oidc/login?next=//evil.example"))
    callback = next(r for r in other.hops if r.url.startswith(prefixed.url("/dash/oidc/callback")))
    assert callback.headers["location"] in ("/dash/", prefixed.url("/dash/")), callback.headers["location"]

    leave = client.get(prefixed.url("/dash/oidc/logout"))
    assert leave.location is not None
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(leave.location).query)
    assert query["post_logout_redirect_uri"] == [prefixed.url("/dash/")], leave.location

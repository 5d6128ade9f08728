"""How long a sign-in lasts, how it ends, and key rotation, against the real provider.

The provider's id_tokens live a few seconds here (set at run time through its control endpoint),
so expiry is seen within the test: without a refresh token the page's websocket is closed with
1008 and a clear reason and the next page load goes through sign-in again; with one the page
keeps working past the first id_token's end. Logout ends both Aperture's sign-in and the
provider's session, and a new sign-in still verifies after the provider rotates its key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from tests.identity.helpers import (
    ALLOW_SELF,
    WHOAMI,
    aperture_cookies,
    open_websocket,
    page_token,
    run,
    slider_round_trip,
)
from tests.support.oidc import OidcProvider, SignInClient, aperture_args, aperture_env
from tests.support.servers import LogMark, ServerProcess

pytestmark = pytest.mark.timeout(60)

SHORT_TTL = 6  # seconds an id_token lives in the expiry tests
EXPIRED_REASON = "sign-in expired; reload the page to sign in again"


@pytest.fixture(autouse=True)
def normal_lifetimes(provider: OidcProvider) -> Iterator[None]:
    yield
    provider.configure(ttl={"IdToken": 60}, refresh_tokens="offline_access", rotate_refresh_tokens=False)


@pytest.fixture(scope="module")
def server(module_server_factory: Any, provider: OidcProvider) -> ServerProcess:
    started = module_server_factory([WHOAMI], aperture_args(provider, ALLOW_SELF), env=aperture_env())
    provider.allow(started.base_url)
    return started


def test_without_refresh_the_websocket_closes_at_expiry_and_sign_in_starts_again(
    server: ServerProcess, provider: OidcProvider
) -> None:
    provider.configure(ttl={"IdToken": SHORT_TTL}, refresh_tokens="never")
    client = SignInClient()
    url = server.url("/whoami")
    token = page_token(client.sign_in(url))

    async def until_closed() -> Any:
        ws = await open_websocket(client, url, token)
        await slider_round_trip(ws, 2)
        return await ws.closed(timeout=SHORT_TTL + 20)

    closed = run(until_closed())
    assert closed.code == 1008 and closed.reason == EXPIRED_REASON, closed
    again = client.get(url)
    assert again.status == 302 and again.location is not None, again.status
    assert again.location.startswith(server.url("/oidc/login?next="))
    assert page_token(client.sign_in(url))  # the provider still knows the browser: no login form
    assert client.logins == 1


def test_with_refresh_the_page_keeps_working_past_expiry(
    server: ServerProcess, provider: OidcProvider
) -> None:
    provider.configure(ttl={"IdToken": SHORT_TTL}, refresh_tokens="always")
    client = SignInClient()
    url = server.url("/whoami")
    token = page_token(client.sign_in(url))
    (before,) = aperture_cookies(client).values()
    refreshes_before = len(provider.requests(r"^POST /token 200"))

    async def past_expiry() -> None:
        ws = await open_websocket(client, url, token)
        try:
            await slider_round_trip(ws, 2)
            await asyncio.sleep(SHORT_TTL * 1.6)  # past the first id_token's end, refreshed in between
            await slider_round_trip(ws, 3)
        finally:
            await ws.close()

    run(past_expiry())
    page = client.get(url)  # the cookie's sign-in has ended: this request refreshes it
    assert page.status == 200, (page.status, page.location)
    page_token(page)
    (after,) = aperture_cookies(client).values()
    assert after.value != before.value  # re-sealed with the refreshed sign-in
    assert len(provider.requests(r"^POST /token 200")) > refreshes_before
    assert client.logins == 1


def test_with_rotating_refresh_tokens_the_next_page_load_still_works(
    server: ServerProcess, provider: OidcProvider
) -> None:
    """The websocket's refresh spends the cookie's refresh token; the next page load is not refused."""
    provider.configure(ttl={"IdToken": SHORT_TTL}, refresh_tokens="always", rotate_refresh_tokens=True)
    client = SignInClient()
    url = server.url("/whoami")
    token = page_token(client.sign_in(url))

    async def past_expiry() -> None:
        ws = await open_websocket(client, url, token)
        try:
            await asyncio.sleep(SHORT_TTL * 1.3)
            await slider_round_trip(ws, 4)
        finally:
            await ws.close()

    run(past_expiry())
    page = client.follow(url)  # refreshed, or signed in again at the provider without a login form
    assert page.status == 200 and page.url == url, (page.status, page.url)
    page_token(page)
    assert client.logins == 1
    assert "Traceback" not in server.logs()


def test_logout_ends_the_sign_in_here_and_at_the_provider(
    server: ServerProcess, provider: OidcProvider
) -> None:
    client = SignInClient()
    url = server.url("/whoami")
    assert client.sign_in(url).status == 200
    assert aperture_cookies(client)

    leave = client.get(server.url("/oidc/logout"))
    assert leave.status == 302 and leave.location is not None
    assert leave.location.startswith(provider.url("/session/end")), leave.location
    assert "id_token_hint=" in leave.location or "client_id=" in leave.location
    assert not aperture_cookies(client), "the sign-in cookie is still there after logout"
    assert client.get(url).status == 302  # not signed in any more

    confirm = client.get(leave.location)
    assert confirm.status == 200, confirm.status
    landed = client.confirm_logout(confirm)
    assert any(reply.url == server.url("/") for reply in client.hops), [r.url for r in client.hops]
    assert "Traceback" not in landed.body

    # The provider's session is over too: signing in asks for the login again.
    logins = client.logins
    form = client.follow(url)  # no user given: stops at the provider's login form
    assert client.provider_form(form) is not None and form.url.startswith(provider.issuer), form.url
    assert client.sign_in(url).status == 200
    assert client.logins == logins + 1


def test_a_new_sign_in_verifies_after_the_provider_rotates_its_key(
    server: ServerProcess, provider: OidcProvider
) -> None:
    earlier = SignInClient()
    url = server.url("/whoami")
    assert earlier.sign_in(url).status == 200
    old_kid = provider.signing_key["kid"]

    mark = LogMark(server)
    provider.rotate_key(keep_old=False)
    assert provider.signing_key["kid"] != old_kid
    later = SignInClient()
    page = later.sign_in(url)
    assert page.status == 200, (page.status, page.body[:500])
    page_token(page)
    assert "refused" not in mark.new()
    assert earlier.get(url).status == 200  # an existing sign-in does not depend on the provider's keys

"""OpenID Connect sign-in in headless Chromium, against the real provider (``oidc-provider``).

The browser opens the app, is sent to the provider's login form, signs in, and comes back to a
page whose websocket works and which shows who signed in; the sign-in cookie is HttpOnly and
SameSite=Lax. Logout ends the sign-in here and at the provider, so the next visit shows the
provider's login form again. Requests that would leave loopback are aborted and must not occur.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.identity.helpers import ALLOW_SELF, PROVIDER_COOKIE, SESSION_COOKIE, WHOAMI
from tests.support.browser import BokehPage
from tests.support.oidc import (
    PASSWORD,
    OidcProvider,
    aperture_args,
    aperture_env,
    keep_on_loopback,
)
from tests.support.servers import ServerProcess

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]


@pytest.fixture(scope="module")
def server(module_server_factory: Any, provider: OidcProvider) -> ServerProcess:
    args = aperture_args(provider, "--oidc-pass-claims", "email", ALLOW_SELF)
    started = module_server_factory([WHOAMI], args, env=aperture_env())
    provider.allow(started.base_url)
    return started


@pytest.fixture
def page(chromium: Any, bokeh_page: BokehPage) -> Iterator[tuple[BokehPage, list[str]]]:
    chromium.clear_cookies()
    blocked = keep_on_loopback(bokeh_page.page)
    yield bokeh_page, blocked
    assert not blocked, f"the browser tried to leave loopback: {blocked}"


def log_in_at_provider(page: BokehPage, provider: OidcProvider, user: str) -> None:
    page.page.wait_for_selector("input[name=login]")
    assert page.page.url.startswith(provider.issuer), page.page.url
    page.page.fill("input[name=login]", user)
    page.page.fill("input[name=password]", PASSWORD)
    with page.page.expect_navigation():
        page.page.click("button[type=submit]")


def sign_in(page: BokehPage, server: ServerProcess, provider: OidcProvider, user: str = "alice") -> None:
    page.page.goto(server.url("/whoami"), wait_until="load")
    log_in_at_provider(page, provider, user)
    page.page.wait_for_url(server.url("/whoami"))
    page.wait_for_bokeh()


def test_sign_in_shows_the_app_with_the_user_and_the_websocket_works(
    page: tuple[BokehPage, list[str]], server: ServerProcess, provider: OidcProvider, chromium: Any
) -> None:
    bokeh, _ = page
    sign_in(bokeh, server, provider, user="alice")
    assert bokeh.view_text("user") == "user=alice"
    assert "alice@example.test" in bokeh.view_text("claims")

    bokeh.set_model("slider", "value", 4)
    bokeh.wait_for_model("echo", "model.text === 'value=4'")
    assert bokeh.view_text("echo") == "value=4"

    ours = [c for c in chromium.cookies(server.base_url) if not PROVIDER_COOKIE.match(c["name"])]
    assert [c["name"] for c in ours] == [SESSION_COOKIE], ours  # the flow cookie is gone once used
    assert ours[0]["httpOnly"] and ours[0]["sameSite"] == "Lax" and not ours[0]["secure"], ours
    assert SESSION_COOKIE not in bokeh.page.evaluate("document.cookie")
    bokeh.assert_no_errors()


def test_logout_asks_for_the_login_again(
    page: tuple[BokehPage, list[str]], server: ServerProcess, provider: OidcProvider, chromium: Any
) -> None:
    bokeh, _ = page
    sign_in(bokeh, server, provider, user="bob")
    assert bokeh.view_text("user") == "user=bob"

    bokeh.page.goto(server.url("/oidc/logout"), wait_until="load")
    assert bokeh.page.url.startswith(provider.issuer), bokeh.page.url  # the provider asks to confirm
    with bokeh.page.expect_navigation():
        bokeh.page.click("button[value=yes]")
    # Back at the server's root, signed out: sent on to the provider, which asks for the login.
    bokeh.page.wait_for_selector("input[name=login]")
    assert bokeh.page.url.startswith(provider.issuer)
    names = [c["name"] for c in chromium.cookies(server.base_url)]
    assert SESSION_COOKIE not in names, names

    log_in_at_provider(bokeh, provider, "alice")
    bokeh.page.wait_for_url(server.url("/") + "**")
    bokeh.page.goto(server.url("/whoami"), wait_until="load")
    bokeh.wait_for_bokeh()
    assert bokeh.view_text("user") == "user=alice"

"""The log-in example (`examples/auth/`) in headless Chromium: form, app, widget round trip, logout.

One server runs `examples/auth/app.py` with `examples/auth/auth.py`, a cookie secret and XSRF
checking, as the example's README says. The browser context is shared by the module, so every
test starts by dropping its cookies (a logged-out browser).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.browser import BokehPage
from tests.support.servers import REPO_ROOT, ServerProcess

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

EXAMPLE = REPO_ROOT / "examples" / "auth"
# The browser loads pages from 127.0.0.1, while the default allow-list is localhost:<port>.
ALLOW_SELF = "--allow-websocket-origin=127.0.0.1:{port}"


@pytest.fixture(scope="module")
def server(module_server_factory: Any) -> ServerProcess:
    args = [
        "--auth-module",
        str(EXAMPLE / "auth.py"),
        "--cookie-secret",
        "browser-test-cookie-secret-0123456789abcdef",
        "--enable-xsrf-cookies",
        ALLOW_SELF,
    ]
    return module_server_factory([EXAMPLE / "app.py"], args)


@pytest.fixture
def page(chromium: Any, bokeh_page: BokehPage) -> Iterator[BokehPage]:
    chromium.clear_cookies()
    yield bokeh_page


def on_login_form(page: BokehPage, server: ServerProcess, next_path: str = "/app") -> None:
    page.page.wait_for_selector("#login-form")
    assert page.page.url == server.url("/login?next=" + next_path.replace("/", "%2F"))
    assert page.page.title() == "Log in"


def log_in(page: BokehPage, password: str = "demo") -> None:
    page.page.fill("#username", "demo")
    page.page.fill("#password", password)
    with page.page.expect_navigation():
        page.page.click("#submit")


def test_login_opens_the_app_and_logout_closes_it(server: ServerProcess, page: BokehPage) -> None:
    response = page.page.goto(server.url("/app"))
    assert response is not None and response.ok
    on_login_form(page, server)

    log_in(page)
    assert page.page.url == server.url("/app")
    page.wait_for_bokeh()
    painted = page.wait_for_painted_canvas()
    assert painted["width"] > 0 and painted["height"] > 0
    assert page.page.title() == "Auth demo"
    assert page.view_text("hello") == "Hello, demo"
    # The signed cookie is HttpOnly: no script on the page can read it.
    assert "user=" not in page.page.evaluate("document.cookie")

    # A slider change goes to the Python callback, which updates the status Div and the data.
    handle = page.view_element("frequency").wait_for_selector(".noUi-handle")
    handle.focus()
    page.page.keyboard.press("ArrowRight")
    page.wait_for_model("frequency", "model.value === 1.5")
    page.wait_for_model("status", "model.text === 'frequency=1.5'")
    y1 = page.model_value("source", "(model.data instanceof Map ? model.data.get('y') : model.data.y)[1]")
    x1 = page.model_value("source", "(model.data instanceof Map ? model.data.get('x') : model.data.x)[1]")
    assert y1 == pytest.approx(math.sin(1.5 * x1))
    page.assert_no_errors()

    # Log out: back on the form, and the app asks for a login again.
    button = page.view_element("logout").wait_for_selector("button")
    with page.page.expect_navigation(url=re.compile(r"/login")):
        button.click()
    page.page.wait_for_selector("#login-form")
    assert page.page.url == server.url("/login")
    page.page.goto(server.url("/app"))
    on_login_form(page, server)
    page.assert_no_errors()


def test_wrong_password_stays_on_the_form(server: ServerProcess, page: BokehPage) -> None:
    page.page.goto(server.url("/app"))
    on_login_form(page, server)
    log_in(page, password="not-the-password")
    assert "wrong password" in page.page.inner_text("#error")
    page.page.goto(server.url("/app"))
    on_login_form(page, server)
    # The failed POST answers 403, which Chromium reports as a failed resource load.
    page.assert_no_errors(ignore=(r"status of 403",))


def test_login_returns_to_the_requested_page(server: ServerProcess, page: BokehPage) -> None:
    page.page.goto(server.url("/app?greeting=hi"))
    page.page.wait_for_selector("#login-form")
    assert "next=%2Fapp%3Fgreeting%3Dhi" in page.page.url
    log_in(page)
    assert page.page.url == server.url("/app?greeting=hi")
    page.wait_for_bokeh()
    assert page.view_text("hello") == "Hello, demo"
    page.assert_no_errors()

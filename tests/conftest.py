"""Fixtures shared by every test suite.

Servers: ``server_factory`` (function scope) and ``module_server_factory``
(module scope) start ``ServerProcess`` instances and stop them all at teardown;
``server_program`` is the command they run, aperture unless the environment
variable ``APERTURE_TEST_PROGRAM`` says otherwise (``bokeh`` runs ``bokeh serve``
to check a test against the incumbent; any other value is a command line).

Browser: ``chromium`` (module scope, one browser per test module) and
``bokeh_page`` (a fresh page per test, closed afterwards, see
``tests/support/browser.py``). Missing Chromium skips, or fails under ``CI=true``.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # `tests.support` and `aperture` import from the checkout
    sys.path.insert(0, str(REPO_ROOT))

from tests.support.browser import BokehPage, launch_chromium  # noqa: E402
from tests.support.oidc import OidcProvider, require_provider  # noqa: E402
from tests.support.servers import APERTURE, BOKEH, ServerProcess  # noqa: E402

ServerFactory = Callable[..., ServerProcess]


@pytest.fixture(scope="session")
def server_program() -> list[str]:
    """The server command up to ``serve``, chosen by ``APERTURE_TEST_PROGRAM``."""
    choice = os.environ.get("APERTURE_TEST_PROGRAM", "").strip()
    if choice in ("", "aperture"):
        return list(APERTURE)
    if choice == "bokeh":
        return list(BOKEH)
    return shlex.split(choice)


@pytest.fixture(scope="session")
def serving_bokeh(server_program: list[str]) -> bool:
    """True when the suite runs against ``bokeh serve`` instead of aperture."""
    return list(server_program) == list(BOKEH)


def _factory(program: list[str]) -> Iterator[ServerFactory]:
    started: list[ServerProcess] = []

    def start(apps: Any = (), args: Any = (), **kwargs: Any) -> ServerProcess:
        """``start(apps, args, env=..., ...)``: a running ServerProcess, stopped at teardown."""
        kwargs.setdefault("program", program)
        server = ServerProcess(apps, args, **kwargs)
        started.append(server)
        return server.start()

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def server_factory(server_program: list[str]) -> Iterator[ServerFactory]:
    yield from _factory(server_program)


@pytest.fixture(scope="module")
def module_server_factory(server_program: list[str]) -> Iterator[ServerFactory]:
    yield from _factory(server_program)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """A Playwright ``BrowserContext`` on /usr/bin/chromium, shared by one test module."""
    with launch_chromium() as context:
        yield context


@pytest.fixture
def bokeh_page(chromium: Any) -> Iterator[BokehPage]:
    page = chromium.new_page()
    try:
        yield BokehPage(page)
    finally:
        page.close()


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory, serving_bokeh: bool) -> Iterator[OidcProvider]:
    """A real OpenID Connect provider (oidc-provider on Node.js) for one test module."""
    if serving_bokeh:
        pytest.skip("bokeh serve has no built-in OpenID Connect sign-in")
    require_provider()
    with OidcProvider(tmp_path_factory.mktemp("provider")) as started:
        yield started

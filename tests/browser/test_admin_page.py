"""The admin page (`--admin`) in headless Chromium: live session counts without a reload, recent
errors shown as text (a markup payload in a log message stays inert), and no console errors, so
the page works under its own strict Content-Security-Policy."""

from __future__ import annotations

import textwrap
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import BokehPage
from tests.support.servers import ServerProcess

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

ALLOW_SELF = "--allow-websocket-origin=127.0.0.1:{port}"
PAYLOAD = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
XSS_APP = f"""
    import logging
    from bokeh.io import curdoc
    from bokeh.models import Div

    logging.getLogger("xss_app").error({PAYLOAD!r})
    curdoc().add_root(Div(text="built"))
"""
WAIT_MS = 10_000  # the page polls every 2 s


@pytest.fixture(scope="module")
def server(module_server_factory: Any, tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    app = Path(tmp_path_factory.mktemp("admin_page")) / "xss.py"
    app.write_text(textwrap.dedent(XSS_APP))
    return module_server_factory(["tests/apps/demo.py", str(app)], ["--admin", ALLOW_SELF])  # type: ignore[no-any-return]


def count_of(admin: BokehPage, route: str) -> int:
    selector = f'#apps section[data-route="{route}"] .count'
    admin.page.wait_for_selector(selector, timeout=WAIT_MS)
    return int(admin.page.text_content(selector) or "-1")


def wait_text(admin: BokehPage, script: str, arg: Any) -> None:
    admin.page.wait_for_function(script, arg=arg, timeout=WAIT_MS, polling=100)


def test_sessions_update_live_and_errors_show_as_text(server: ServerProcess, chromium: Any) -> None:
    admin = BokehPage(chromium.new_page())
    visitor = BokehPage(chromium.new_page())
    try:
        response = admin.page.goto(server.url("/admin"), wait_until="load")
        assert response is not None and response.status == 200
        before = count_of(admin, "/demo")

        # A new session; its websocket opens once BokehJS runs (the count and connection wait for it).
        visit = visitor.page.goto(server.url("/demo"), wait_until="load")
        assert visit is not None and visit.status == 200
        wait_text(
            admin,
            """([route, n]) => {
                const section = document.querySelector(`#apps section[data-route="${route}"]`);
                return section !== null && Number(section.querySelector(".count").textContent) === n
                    && section.querySelector("tbody td:nth-child(3)").textContent === "1";
            }""",
            ["/demo", before + 1],
        )
        assert (
            admin.page.evaluate("() => performance.getEntriesByType('navigation').length") == 1
        )  # no reload

        with urllib.request.urlopen(server.url("/xss"), timeout=20) as reply:
            assert reply.status == 200
        wait_text(
            admin,
            "(payload) => Array.from(document.querySelectorAll('#errors pre.message'))"
            ".some((el) => el.textContent === payload)",
            PAYLOAD,
        )
        assert admin.page.evaluate("() => window.__xss") is None
        assert (
            admin.page.evaluate("() => document.querySelectorAll('#errors img, #errors script').length") == 0
        )
        meta = admin.page.text_content("#errors .problem .meta") or ""
        assert "xss_app" in meta and "app /xss" in meta
        admin.assert_no_errors()
        visitor.assert_no_errors()
    finally:
        admin.page.close()
        visitor.page.close()

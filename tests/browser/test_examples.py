"""The example apps, served for real and driven by headless Chromium.

Each app must render (a painted canvas, no browser errors) and a widget change
made in the browser must reach its Python callback and come back as a change the
browser can see. One server serves all the examples and one browser serves the
whole module; each test gets its own page, hence its own session. Models are
found by their ``name=`` through BokehJS (see ``tests/support/browser.py``).
"""

from __future__ import annotations

import re
import time
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.browser import BokehPage, data_column_js
from tests.support.servers import REPO_ROOT, ServerProcess

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

EXAMPLES = REPO_ROOT / "examples"
APPS = [
    EXAMPLES / "sliders.py",
    EXAMPLES / "streaming.py",
    EXAMPLES / "dashboard",
    EXAMPLES / "panel_dashboard.py",
]
# The browser loads pages from 127.0.0.1, while the default allow-list is localhost:<port>.
ALLOW_SELF = "--allow-websocket-origin=127.0.0.1:{port}"


@pytest.fixture(scope="module")
def server(module_server_factory: Any) -> ServerProcess:
    return module_server_factory(APPS, [ALLOW_SELF])


def get(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers.get("Content-Type", ""), response.read().decode()


def max_of(source: str, column: str) -> str:
    return f"Math.max(...{data_column_js(source, column)})"


# -- sliders -----------------------------------------------------------------------------------


def test_sliders_renders(server: ServerProcess, bokeh_page: BokehPage) -> None:
    bokeh_page.open(server.url("/sliders"))
    painted = bokeh_page.wait_for_painted_canvas()
    assert painted["width"] > 0 and painted["height"] > 0
    assert bokeh_page.page.title() == "Sliders"
    assert len(bokeh_page.column("source", "y")) == 200
    bokeh_page.assert_no_errors()


def test_sliders_keyboard_moves_amplitude_through_python(
    server: ServerProcess, bokeh_page: BokehPage
) -> None:
    bokeh_page.open(server.url("/sliders"))
    assert bokeh_page.model_value("amplitude", "model.value") == 1.0
    assert bokeh_page.model_value("source", max_of("model", "y")) == pytest.approx(1.0, abs=0.01)

    handle = bokeh_page.view_element("amplitude").wait_for_selector(".noUi-handle")
    handle.focus()
    for _ in range(5):
        bokeh_page.page.keyboard.press("ArrowRight")

    # Only the server's update_data() rewrites source.data: y = amplitude * sin(x).
    bokeh_page.wait_for_model("amplitude", "Math.abs(model.value - 1.5) < 1e-9")
    peak = bokeh_page.wait_for_model("source", f"Math.abs({max_of('model', 'y')} - 1.5) < 0.01")
    assert peak is True
    bokeh_page.assert_no_errors()


def test_sliders_title_and_js_change_round_trip(server: ServerProcess, bokeh_page: BokehPage) -> None:
    bokeh_page.open(server.url("/sliders"))

    text_input = bokeh_page.view_element("title").wait_for_selector("input")
    text_input.fill("round trip")
    text_input.press("Enter")
    bokeh_page.wait_for_model("plot", "model.title.text === 'round trip'")

    # A change made through the BokehJS model API is synced like a user's.
    bokeh_page.set_model("offset", "value", 2.0)
    bokeh_page.wait_for_model("source", f"Math.abs({max_of('model', 'y')} - 3.0) < 0.01")
    bokeh_page.assert_no_errors()


# -- streaming ---------------------------------------------------------------------------------


def last_step(page: BokehPage) -> int:
    return int(page.model_value("source", f"{data_column_js('model', 'step')}.at(-1)"))


def test_streaming_renders_and_streams(server: ServerProcess, bokeh_page: BokehPage) -> None:
    bokeh_page.open(server.url("/streaming"))
    bokeh_page.wait_for_painted_canvas()
    start = last_step(bokeh_page)
    bokeh_page.wait_for_model("source", f"{data_column_js('model', 'step')}.at(-1) >= arg", start + 3)
    assert bokeh_page.model_value("toggle", "model.label") == "Pause"
    bokeh_page.assert_no_errors()


def test_streaming_button_pauses_and_resumes(server: ServerProcess, bokeh_page: BokehPage) -> None:
    bokeh_page.open(server.url("/streaming"))
    steps = data_column_js("model", "step")
    bokeh_page.wait_for_model("source", f"{steps}.at(-1) >= 2")

    def click_toggle() -> None:
        # Looked up afresh each time: BokehJS may re-render the button when its label changes.
        bokeh_page.view_element("toggle").wait_for_selector("button").click()

    click_toggle()
    bokeh_page.wait_for_model("toggle", "model.label === 'Resume'")
    bokeh_page.wait_for_model("status", "model.text === 'paused'")
    assert bokeh_page.view_text("toggle") == "Resume"
    assert bokeh_page.view_text("status") == "paused"
    # Messages arrive in order, so no point streamed before the pause can still be in flight.
    paused_at = last_step(bokeh_page)
    time.sleep(0.6)  # six periods of the 100 ms callback
    assert last_step(bokeh_page) == paused_at

    click_toggle()
    bokeh_page.wait_for_model("toggle", "model.label === 'Pause'")
    bokeh_page.wait_for_model("source", f"{steps}.at(-1) > arg", paused_at)
    bokeh_page.assert_no_errors()


# -- dashboard (directory app) -----------------------------------------------------------------


def test_dashboard_template_and_static_over_http(server: ServerProcess) -> None:
    status, content_type, html = get(server.url("/dashboard?name=Ada"))
    assert status == 200 and content_type.startswith("text/html")
    assert '<h1 class="dashboard-heading">Signal dashboard</h1>' in html  # template_variables
    assert '<link rel="stylesheet" href="dashboard/static/style.css">' in html
    assert "<title>Dashboard</title>" in html

    status, content_type, css = get(server.url("/dashboard/static/style.css"))
    assert status == 200 and content_type.startswith("text/css")
    assert "h1.dashboard-heading" in css


def test_dashboard_renders_with_template_theme_css_and_hooks(
    server: ServerProcess, bokeh_page: BokehPage
) -> None:
    bokeh_page.open(server.url("/dashboard?name=Ada"))
    bokeh_page.wait_for_painted_canvas()

    heading = bokeh_page.page.locator("h1.dashboard-heading")
    assert heading.inner_text() == "Signal dashboard"
    assert heading.evaluate("el => getComputedStyle(el).color") == "rgb(120, 60, 20)"  # static CSS

    assert bokeh_page.model_value("plot", "model.background_fill_color") == "#f4f1ea"  # theme.yaml
    # app_hooks.on_session_created put these on the session context before main.py ran.
    assert bokeh_page.model_value("greeting", "model.text") == "Hello, Ada!"
    assert re.fullmatch(r"session #\d+", bokeh_page.model_value("session-number", "model.text"))
    bokeh_page.assert_no_errors()


def test_dashboard_select_round_trip(server: ServerProcess, bokeh_page: BokehPage) -> None:
    bokeh_page.open(server.url("/dashboard"))
    assert bokeh_page.model_value("greeting", "model.text") == "Hello, stranger!"
    assert bokeh_page.model_value("summary", "model.text").startswith("sine:")

    select = bokeh_page.view_element("signal").wait_for_selector("select")
    select.select_option("cosine")

    bokeh_page.wait_for_model("summary", "model.text.startsWith('cosine:')")
    bokeh_page.wait_for_model("plot", "model.title.text === 'cosine'")
    first = bokeh_page.model_value("source", f"{data_column_js('model', 'y')}[0]")
    assert first == pytest.approx(1.0)  # cos(0), computed by the server
    assert bokeh_page.view_text("summary") == "cosine: min -1.000, max 1.000, mean 0.003"
    bokeh_page.assert_no_errors()


def test_dashboard_session_hooks_run(server_factory: Any, bokeh_page: BokehPage) -> None:
    # A server of its own that reaps unused sessions quickly. The lifetime must stay well above
    # the time from page GET to websocket connect, or the page's session is reaped before use.
    server = server_factory(
        [EXAMPLES / "dashboard"],
        [ALLOW_SELF, "--check-unused-sessions", "200", "--unused-session-lifetime", "2000"],
    )
    server.wait_for_log(r"dashboard: server loaded")

    bokeh_page.open(server.url("/dashboard?name=Grace"))
    assert bokeh_page.model_value("greeting", "model.text") == "Hello, Grace!"
    number = bokeh_page.model_value("session-number", "model.text")
    created = re.findall(r"dashboard: session (\S+) created", server.logs())
    assert created and number == f"session #{len(created)}"

    bokeh_page.page.close()
    for session_id in created:
        server.wait_for_log(rf"dashboard: session {re.escape(session_id)} destroyed")
    bokeh_page.assert_no_errors()


# -- panel_dashboard (Panel, hvplot, Tabulator) ------------------------------------------------


def keep_offline(page: BokehPage) -> list[str]:
    """Abort every request for a host other than the loopback; return the list they are added to."""
    aborted: list[str] = []

    def leaves_machine(url: str) -> bool:
        parts = urlsplit(url)
        return parts.scheme in ("http", "https") and parts.hostname not in ("127.0.0.1", "localhost")

    def abort(route: Any) -> None:
        aborted.append(f"{route.request.resource_type} {route.request.url}")
        route.abort()

    page.page.route(leaves_machine, abort)
    return aborted


def test_panel_dashboard_renders_and_follows_its_widgets(
    server: ServerProcess, bokeh_page: BokehPage, serving_bokeh: bool
) -> None:
    aborted = keep_offline(bokeh_page)
    bokeh_page.open(server.url("/panel_dashboard"), timeout_ms=60_000)  # the first page imports Panel
    bokeh_page.wait_for_painted_canvas()
    page = bokeh_page.page
    assert page.title() == "Panel dashboard"
    page.get_by_text("sine: 50 samples").wait_for()

    # Each change goes to Python, which recomputes the plot, the table and the summary.
    page.locator(".signal select").select_option("cosine")
    page.get_by_text("cosine: 50 samples, mean").wait_for()
    page.wait_for_function(
        """() => Array.from(Bokeh.documents[0].all_models)
            .some((model) => model.type === "Title" && model.text === "cosine")"""
    )
    first_y = page.locator(".table .tabulator-cell[tabulator-field=y]").first
    page.wait_for_function("(cell) => cell.innerText === '1.0'", arg=first_y.element_handle())  # cos(0)

    page.locator(".samples .noUi-handle").focus()
    page.keyboard.press("ArrowRight")
    page.get_by_text("cosine: 60 samples").wait_for()

    page.locator(".table .tabulator-cell[tabulator-field=x]").nth(1).click()
    page.get_by_text("selected x = ").wait_for()

    # Panel links two stylesheets on its CDN under any server (the Tabulator theme and the
    # template's web font), neither needed to render; everything else comes from the server
    # (under bokeh serve, Panel's component stylesheets come from its CDN too).
    assert all(request.startswith("stylesheet ") for request in aborted), aborted
    if not serving_bokeh:
        known = re.compile(
            r"stylesheet https://(cdn\.holoviz\.org/.*/datatabulator/|fonts\.googleapis\.com/)"
        )
        assert all(known.match(request) for request in aborted), aborted
    failed = tuple(re.escape(f"({request.split(' ', 1)[1]})") + "$" for request in aborted)
    bokeh_page.assert_no_errors(ignore=failed)

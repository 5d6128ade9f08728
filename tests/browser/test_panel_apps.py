"""Panel apps written as Panel's documentation teaches, served for real and driven by Chromium.

The apps live in ``tests/apps/panel/``: ``pn.bind``/``pn.rx`` in a
FastListTemplate, ``pn.Param`` with ``pn.state.location`` and session
arguments, a Tabulator with edits and selection, a periodic callback, async
callbacks, and an hvplot/HoloViews plot with a ``Tap`` stream. One server
serves all of them, and ``bokeh serve`` serves the same apps beside it: every
app test runs against both (``[aperture]`` is ``server_program``, so
``APERTURE_TEST_PROGRAM`` still chooses it; ``[bokeh]`` is the reference).

Each test checks that the page renders, that something done in the browser
reached a Python callback (the app prints a line) and came back as a visible
change, that the browser saw no errors and that the server logged none. No
request may leave the machine: requests for any host but the loopback are
aborted and recorded, and only stylesheets may be among them. Under ``bokeh
serve`` Panel points every component's stylesheets at its CDN (only ``panel
serve`` rewrites them to the server's copy, as Aperture does); under Aperture the
only ones left are the two Panel links on its CDN whatever the server
(``KNOWN_EXTERNAL``: the Tabulator theme BokehJS's bundle puts in the page head,
and the FAST template's web font), neither needed to render.

Sessions of the shared servers live as long as the module, so session teardown
happens in one place: ``test_sessions_end_without_errors`` uses servers that
expire sessions within seconds. The tests on those servers marked as needing
Panel's ``document_ready`` hook exercise what Panel does only once a session is
"loaded" (swap in a new pane or plot, restart a periodic callback): ``panel
serve`` and Aperture wire that hook, ``bokeh serve`` does not, so there they fail
(and HoloViews and Panel re-schedule those updates on every tick, a busy loop).
"""

from __future__ import annotations

import hashlib
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.browser import BokehPage
from tests.support.servers import BOKEH, REPO_ROOT, LogMark, ServerProcess

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

APPS_DIR = REPO_ROOT / "tests" / "apps" / "panel"
APPS = ("bind_template", "param_location", "tabulator_edit", "periodic", "async_callbacks", "hvplot_stream")
ALLOW_SELF = "--allow-websocket-origin=127.0.0.1:{port}"
# The shared servers keep every session until they stop; the short-lived ones end them quickly.
KEEP_SESSIONS = ("--check-unused-sessions", "3600000", "--unused-session-lifetime", "3600000")
END_SESSIONS = ("--check-unused-sessions", "250", "--unused-session-lifetime", "3000")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# The first page of a server imports Panel, HoloViews and hvplot: give it time on a busy machine.
OPEN_TIMEOUT_MS = 60_000
WAIT_MS = 15_000
SERVER_ERROR = re.compile(r"Traceback \(most recent call last\)|\bERROR\b|\bError\b|\bException\b|KeyError")
NEEDS_DOCUMENT_READY = (
    "Panel applies this only once its document_ready hook has run, which bokeh serve never wires up"
)
# What Panel links on its CDN under any server: the Tabulator theme and the FAST template's font.
KNOWN_EXTERNAL = re.compile(
    r"https://cdn\.holoviz\.org/panel/[^/]+/dist/bundled/datatabulator/[^?]+\.css"
    r"|https://fonts\.googleapis\.com/css\?family=Open\+Sans"
)


def app_paths(*names: str) -> list[str]:
    return [str(APPS_DIR / f"{name}.py") for name in names]


# -- servers -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def aperture_server(module_server_factory: Any) -> ServerProcess:
    return module_server_factory(app_paths(*APPS), [ALLOW_SELF, *KEEP_SESSIONS])


@pytest.fixture(scope="module")
def bokeh_server(module_server_factory: Any) -> ServerProcess:
    return module_server_factory(app_paths(*APPS), [ALLOW_SELF, *KEEP_SESSIONS], program=list(BOKEH))


@pytest.fixture(scope="module")
def aperture_short(module_server_factory: Any) -> ServerProcess:
    apps = app_paths("bind_template", "param_location", "periodic", "hvplot_stream")
    return module_server_factory(apps, [ALLOW_SELF, *END_SESSIONS])


@pytest.fixture(scope="module")
def bokeh_short(module_server_factory: Any) -> ServerProcess:
    apps = app_paths("bind_template", "param_location", "periodic", "hvplot_stream")
    return module_server_factory(apps, [ALLOW_SELF, *END_SESSIONS], program=list(BOKEH))


def _pick(request: Any, serving_bokeh: bool, suffix: str) -> ServerProcess:
    if request.param == "bokeh" and serving_bokeh:
        pytest.skip("the server under test is bokeh serve already")
    return request.getfixturevalue(f"{request.param}_{suffix}")  # type: ignore[no-any-return]


@pytest.fixture(params=["aperture", "bokeh"])
def server(request: Any, serving_bokeh: bool) -> ServerProcess:
    """The shared server of each program: every app test runs under both."""
    return _pick(request, serving_bokeh, "server")


reference_fails = pytest.param("bokeh", marks=pytest.mark.xfail(strict=True, reason=NEEDS_DOCUMENT_READY))


def is_aperture(server: ServerProcess) -> bool:
    return list(server.program) != list(BOKEH)


@pytest.fixture(params=["aperture", reference_fails])
def short_server(request: Any, serving_bokeh: bool) -> ServerProcess:
    """A server of each program whose unused sessions end three seconds after their page closes."""
    return _pick(request, serving_bokeh, "short")


# -- pages -------------------------------------------------------------------------------------


def _leaves_machine(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https", "ws", "wss") and parts.hostname not in LOOPBACK


@dataclass
class Visit:
    """A page plus every request it made: what reached the server, what was stopped, what failed."""

    bokeh: BokehPage
    strict: bool = False  # only KNOWN_EXTERNAL may be asked of the network, as under Aperture
    no_cache: bool = False  # load every asset from the server, so every one is seen and checked
    served: list[str] = field(default_factory=list)  # path?query of requests the server answered
    external: list[tuple[str, str]] = field(default_factory=list)  # (resource type, URL), aborted
    failed: list[str] = field(default_factory=list)  # requests to the server that did not succeed

    @property
    def page(self) -> Any:
        return self.bokeh.page

    def __post_init__(self) -> None:
        if self.no_cache:
            cdp = self.page.context.new_cdp_session(self.page)
            cdp.send("Network.enable")
            cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
        self.page.route(_leaves_machine, self._abort)
        self.page.on("response", self._on_response)
        self.page.on("requestfailed", self._on_failed)

    def _abort(self, route: Any) -> None:
        self.external.append((route.request.resource_type, route.request.url))
        route.abort()

    def _on_response(self, response: Any) -> None:
        if _leaves_machine(response.url):
            return
        parts = urlsplit(response.url)
        self.served.append(parts.path + (f"?{parts.query}" if parts.query else ""))
        if response.status >= 400:
            self.failed.append(f"{response.status} {response.url}")

    def _on_failed(self, request: Any) -> None:
        if not _leaves_machine(request.url):
            self.failed.append(f"{request.failure} {request.url}")

    # -- reading the page ------------------------------------------------------------------------

    def open(self, url: str) -> None:
        self.bokeh.open(url, timeout_ms=OPEN_TIMEOUT_MS)

    def wait_text(self, text: str, timeout_ms: int = WAIT_MS) -> None:
        """Wait until ``text`` is shown somewhere (Playwright's text engine pierces shadow roots)."""
        self.page.get_by_text(text, exact=False).first.wait_for(timeout=timeout_ms)

    def shown(self, css_class: str) -> str:
        """The text a component shows inside its shadow root, style elements skipped."""
        return self.page.locator(f".{css_class}").first.evaluate(  # type: ignore[no-any-return]
            """(el) => Array.from((el.shadowRoot ?? el).children)
                .filter((child) => !["STYLE", "LINK", "SCRIPT"].includes(child.tagName))
                .map((child) => child.innerText).join("\\n").trim()"""
        )

    def wait_shown(self, css_class: str, text: str) -> None:
        """Wait until the component with ``css_class`` shows exactly ``text``."""
        deadline = time.monotonic() + WAIT_MS / 1000
        while (shown := self.shown(css_class)) != text:
            assert time.monotonic() < deadline, f".{css_class} shows {shown!r}, not {text!r}"
            time.sleep(0.05)

    def titles(self) -> list[str]:
        """The text of every plot title in the document, read from BokehJS."""
        return self.page.evaluate(  # type: ignore[no-any-return]
            """() => Array.from(Bokeh.documents[0].all_models)
                .filter((model) => model.type === "Title").map((model) => model.text)"""
        )

    # -- what every test requires ----------------------------------------------------------------

    def assert_offline_and_clean(self) -> None:
        assert not self.failed, "requests to the server failed:\n" + "\n".join(self.failed)
        not_styles = [f"{kind} {url}" for kind, url in self.external if kind != "stylesheet"]
        assert not not_styles, "the page needs more than stylesheets from the network:\n" + "\n".join(
            not_styles
        )
        if self.strict:
            unknown = [url for _, url in self.external if not KNOWN_EXTERNAL.fullmatch(url)]
            assert not unknown, "Panel's assets were asked of its CDN, not the server:\n" + "\n".join(unknown)
        aborted = tuple(re.escape(f"({url})") + "$" for _, url in self.external)
        self.bokeh.assert_no_errors(ignore=aborted)


@pytest.fixture
def visit(bokeh_page: BokehPage) -> Iterator[Visit]:
    yield Visit(bokeh_page)


def assert_log_clean(mark: LogMark) -> None:
    new = mark.new()
    assert not SERVER_ERROR.search(new), f"the server logged an error:\n{new}"


def open_app(visit: Visit, server: ServerProcess, path: str) -> LogMark:
    visit.strict = is_aperture(server)
    mark = LogMark(server)
    visit.open(server.url(path))
    return mark


# -- the apps ----------------------------------------------------------------------------------


def test_bind_and_rx_in_fast_list_template(server: ServerProcess, visit: Visit) -> None:
    mark = open_app(visit, server, "/bind_template")
    visit.wait_text("Panel bind and rx")  # the template's header
    visit.wait_shown("greeting", "Hello, world!")
    visit.wait_shown("total", "Total: 10 items")

    name = visit.page.locator(".name-input input")
    name.fill("Ada")
    name.press("Enter")
    visit.wait_text("Hello, Ada!")
    mark.wait_for(r"bind_template: greet who='Ada' times=1")

    visit.page.locator(".count-slider .noUi-handle").focus()
    visit.page.keyboard.press("ArrowRight")
    visit.wait_text("Total: 20 items")  # pn.rx, computed in Python
    visit.wait_text("Hello, Ada!, Ada!")
    mark.wait_for(r"bind_template: greet who='Ada' times=2")
    visit.assert_offline_and_clean()
    assert_log_clean(mark)


def test_param_panel_synced_with_location_and_session_args(server: ServerProcess, visit: Visit) -> None:
    mark = open_app(visit, server, "/param_location?user=Ada&wave=square&freq=2.5")
    visit.wait_shown("user", "Hello, Ada!")  # pn.state.session_args
    # Under bokeh serve the query string reaches Python only once the page's Location syncs.
    visit.wait_text("my wave: square at 2.5 Hz")
    visit.page.wait_for_function(
        "(select) => select.value === 'square'",
        arg=visit.page.locator(".waveform select").element_handle(),
        timeout=WAIT_MS,
    )

    visit.page.locator(".waveform select").select_option("triangle")
    mark.wait_for(r"param_location: summary 'my wave: triangle at 2.5 Hz'")
    visit.wait_text("my wave: triangle at 2.5 Hz")
    # Python wrote the change back into the browser's URL through pn.state.location.
    visit.page.wait_for_function("() => location.search.includes('wave=triangle')", timeout=WAIT_MS)
    assert "user=Ada" in visit.page.url and "freq=2.5" in visit.page.url

    label = visit.page.locator(".label input")
    label.fill("tide")
    label.press("Enter")
    visit.wait_text("tide: triangle at 2.5 Hz")
    visit.assert_offline_and_clean()
    assert_log_clean(mark)


def test_tabulator_edit_and_selection(server: ServerProcess, visit: Visit) -> None:
    mark = open_app(visit, server, "/tabulator_edit")
    counts = visit.page.locator(".table .tabulator-cell[tabulator-field=count]")
    counts.nth(3).wait_for(timeout=WAIT_MS)
    assert [counts.nth(i).inner_text() for i in range(4)] == ["3", "5", "7", "11"]

    counts.nth(1).click()
    editor = counts.nth(1).locator("input")
    editor.fill("50")
    editor.press("Enter")
    mark.wait_for(r"tabulator_edit: edit count\[1\] .*5\)? -> .*50")
    visit.wait_text("count of row 1 is now 50; total 71")  # the sum is computed in Python

    visit.page.locator(".table .tabulator-cell[tabulator-field=fruit]").nth(2).click()
    mark.wait_for(r"tabulator_edit: selection \[2\]")
    visit.wait_text("selected: cherry")
    visit.assert_offline_and_clean()
    assert_log_clean(mark)


def ticks(visit: Visit) -> int:
    """The tick count the page shows; -1 while the pane has not drawn its text yet."""
    words = visit.shown("ticks").split()
    return int(words[-1]) if words else -1


def wait_ticks_above(visit: Visit, value: int) -> int:
    deadline = time.monotonic() + WAIT_MS / 1000
    while (now := ticks(visit)) <= value:
        assert time.monotonic() < deadline, f"ticks stayed at {now}, expected more than {value}"
        time.sleep(0.1)
    return now


def test_periodic_callback_ticks_and_pauses(server: ServerProcess, visit: Visit) -> None:
    mark = open_app(visit, server, "/periodic")
    wait_ticks_above(visit, 3)

    visit.page.locator(".toggle button").click()
    mark.wait_for(r"periodic: running=False at (\d+)")
    visit.wait_text("Resume")
    paused_at = int(re.findall(r"running=False at (\d+)", mark.new())[-1])
    time.sleep(0.5)  # five periods
    assert ticks(visit) == paused_at
    assert visit.page.locator(".tabulator-row").count() >= 2  # rows streamed into the table
    visit.assert_offline_and_clean()
    assert_log_clean(mark)


def test_async_callbacks(server: ServerProcess, visit: Visit) -> None:
    mark = open_app(visit, server, "/async_callbacks")
    visit.wait_text("PANEL!")  # the async bound function ran for the first render

    visit.page.locator(".fetch button").click()
    mark.wait_for(r"async_callbacks: fetched #\d+")
    visit.wait_text("fetched #")

    word = visit.page.locator(".word input")
    word.fill("aperture")
    word.press("Enter")
    mark.wait_for(r"async_callbacks: shout 'aperture'")
    visit.wait_text("APERTURE!")
    visit.assert_offline_and_clean()
    assert_log_clean(mark)


def test_hvplot_renders_and_tap_stream_reaches_python(server: ServerProcess, visit: Visit) -> None:
    mark = open_app(visit, server, "/hvplot_stream")
    visit.bokeh.wait_for_painted_canvas(timeout_ms=WAIT_MS)
    assert visit.titles() == ["sine"]

    box = visit.page.locator(".plot").first.bounding_box()
    visit.page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    tap = mark.wait_for(r"hvplot_stream: tap x=(-?[\d.]+) y=(-?[\d.]+)")
    x = float(re.search(r"x=(-?[\d.]+)", tap).group(1))  # type: ignore[union-attr]
    assert 0.0 < x < 10.0  # data coordinates, converted by BokehJS and HoloViews
    visit.wait_text(f"tapped at x={x:.1f}")
    visit.assert_offline_and_clean()
    assert_log_clean(mark)


# -- what needs Panel's document_ready hook ----------------------------------------------------


def test_bound_function_swaps_in_a_new_pane(short_server: ServerProcess, visit: Visit) -> None:
    mark = open_app(visit, short_server, "/bind_template")
    visit.wait_text("(1 stars)")
    visit.page.locator(".count-slider .noUi-handle").focus()
    visit.page.keyboard.press("ArrowRight")
    mark.wait_for(r"bind_template: greet who='world' times=2")
    visit.wait_text("(2 stars)", timeout_ms=5_000)
    visit.assert_offline_and_clean()
    assert_log_clean(mark)


def test_widget_driven_hvplot_is_redrawn(short_server: ServerProcess, visit: Visit) -> None:
    mark = open_app(visit, short_server, "/hvplot_stream")
    visit.bokeh.wait_for_painted_canvas(timeout_ms=WAIT_MS)
    visit.page.locator(".column select").select_option("cosine")
    visit.page.wait_for_function(
        """() => Array.from(Bokeh.documents[0].all_models)
            .some((model) => model.type === "Title" && model.text === "cosine")""",
        timeout=5_000,
    )
    assert "hvplot_stream: plot cosine" in mark.new()
    visit.assert_offline_and_clean()
    assert_log_clean(mark)


def test_periodic_callback_resumes(short_server: ServerProcess, visit: Visit) -> None:
    mark = open_app(visit, short_server, "/periodic")
    wait_ticks_above(visit, 2)
    toggle = visit.page.locator(".toggle button")
    toggle.click()
    mark.wait_for(r"periodic: running=False")
    toggle.click()
    mark.wait_for(r"periodic: running=True at (\d+)")
    resumed_at = int(re.findall(r"running=True at (\d+)", mark.new())[-1])
    deadline = time.monotonic() + 5
    while ticks(visit) <= resumed_at + 2:
        assert time.monotonic() < deadline, f"the callback did not resume: ticks stayed at {ticks(visit)}"
        time.sleep(0.1)
    toggle.click()
    visit.assert_offline_and_clean()
    assert_log_clean(mark)


# -- beside bokeh serve ------------------------------------------------------------------------


def page_assets(visit: Visit) -> list[str]:
    """The scripts and stylesheets the page's HTML links, in order."""
    return visit.page.evaluate(  # type: ignore[no-any-return]
        """() => Array.from(document.querySelectorAll("script[src], link[rel=stylesheet][href]"),
            (el) => el.getAttribute("src") ?? el.getAttribute("href"))"""
    )


def fetch(url: str) -> tuple[int, str]:
    """Status and SHA-256 of the body of a GET, without compression."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, hashlib.sha256(response.read()).hexdigest()
    except urllib.error.HTTPError as error:
        return error.code, ""


def test_pages_link_and_serve_what_bokeh_serve_pages_do(server_factory: Any, chromium: Any) -> None:
    """Each page links the same assets under both servers, served with the same bytes.

    Nor does a page ask the network for anything the page of ``bokeh serve`` does not. Fresh servers, visited in the same order: what Panel puts in a page depends on the
    components the process has rendered before (a Tabulator adds its theme to every later page).
    """
    servers = {
        "aperture": server_factory(app_paths(*APPS), [ALLOW_SELF]),
        "bokeh": server_factory(app_paths(*APPS), [ALLOW_SELF], program=list(BOKEH)),
    }
    differences = []
    assets: set[str] = set()
    for app in APPS:
        seen: dict[str, tuple[list[str], list[str]]] = {}
        for label, server in servers.items():
            page = chromium.new_page()
            try:
                visit = Visit(BokehPage(page), strict=is_aperture(server), no_cache=True)
                visit.open(server.url(f"/{app}"))
                visit.page.wait_for_load_state("networkidle")  # stylesheets load after the views render
                visit.assert_offline_and_clean()
                seen[label] = (page_assets(visit), sorted({url for _, url in visit.external}))
                assets.update(path for path in visit.served if path.startswith("/static/"))
            finally:
                page.close()
        (linked, external), (linked_reference, external_reference) = seen["aperture"], seen["bokeh"]
        if linked != linked_reference:
            differences.append(f"{app} links: aperture {linked}\n  bokeh serve {linked_reference}")
        if not set(external) <= set(external_reference):  # fewer is fine: Aperture serves Panel's CSS
            differences.append(
                f"{app} needs the network for {sorted(set(external) - set(external_reference))}"
            )
    assert any(path.startswith("/static/extensions/panel/") for path in assets)
    for path in sorted(assets):
        ours, theirs = (fetch(server.url(path)) for server in servers.values())
        if ours != theirs or ours[0] != 200:
            differences.append(f"{path}: aperture {ours}, bokeh serve {theirs}")
    assert not differences, "\n".join(differences)


# -- session teardown --------------------------------------------------------------------------


@pytest.fixture(params=["aperture", "bokeh"])
def expiring_server(request: Any, serving_bokeh: bool) -> ServerProcess:
    return _pick(request, serving_bokeh, "short")


def test_sessions_end_without_errors(expiring_server: ServerProcess, chromium: Any) -> None:
    """Panel's own session cleanup (location, template, on_session_destroyed) runs without errors."""
    server = expiring_server
    mark = LogMark(server)
    for path, shown in (
        ("/param_location?wave=square", "Hello, stranger!"),
        ("/bind_template", "Hello, world!"),
    ):
        page = chromium.new_page()
        try:
            seen = Visit(BokehPage(page))
            seen.open(server.url(path))
            seen.wait_text(shown)
        finally:
            page.close()
    mark.wait_for(r"param_location: session destroyed", timeout=30)
    mark.wait_for(r"bind_template: session destroyed", timeout=30)
    time.sleep(1.0)  # anything Panel's cleanup logs after the hooks
    assert_log_clean(mark)

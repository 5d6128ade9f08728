"""Embedding an Aperture app into another site's page, driven by headless Chromium.

The Flask and FastAPI examples run as real servers on their own ports, next to an Aperture
server with signed sessions and the same secret. Each page must render the embedded app under
the example's Content-Security-Policy without browser errors, and a slider moved in the browser
must reach the app's Python callback and come back. A parent origin missing from
``--allow-websocket-origin`` gets the autoload script but never the websocket (403). Bokeh's own
``server_document`` / ``server_session`` tags, placed in a parent page, work against Aperture too.
"""

from __future__ import annotations

import re
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from bokeh.embed import server_document as bokeh_server_document
from bokeh.embed import server_session as bokeh_server_session

from aperture.security.tokens import generate_secret_key, generate_session_id, get_session_id
from tests.support.browser import BokehPage, data_column_js
from tests.support.servers import REPO_ROOT, ServerProcess, free_port

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

EXAMPLES = REPO_ROOT / "examples"
SECRET = generate_secret_key()
SIGNED = {"BOKEH_SIGN_SESSIONS": "yes", "BOKEH_SECRET_KEY": SECRET}
FRONT_ENDS = {
    "flask": (EXAMPLES / "flask_embed", "Running on"),
    "fastapi": (EXAMPLES / "fastapi_embed", "Uvicorn running on"),
}
# The console errors a refused websocket causes, from Chromium and from BokehJS.
WS_REFUSED = r"WebSocket connection to .* 403|Could not open websocket"


def token_of(script: str) -> str:
    match = re.search(r'"token"\s*:\s*"([A-Za-z0-9_.-]+)"', script)
    assert match, script[:2000]
    return match.group(1)


def wait_until_answering(url: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)


class Embedding:
    """An Aperture server for one example's bkapp, and that example's web app pointing at it."""

    def __init__(self, factory: Callable[..., ServerProcess], front_end: str, allow_parent: bool) -> None:
        directory, ready_line = FRONT_ENDS[front_end]
        self.parent_port = free_port()
        self.parent_origin = f"127.0.0.1:{self.parent_port}"
        allowed = self.parent_origin if allow_parent else "127.0.0.1:{port}"
        self.aperture = factory([directory / "bkapp.py"], [f"--allow-websocket-origin={allowed}"], env=SIGNED)
        self.bokeh_url = self.aperture.url("/bkapp")
        self.site = factory(
            args=["--address", "127.0.0.1", "--bokeh-url", self.bokeh_url],
            program=[sys.executable, str(directory / "app.py")],
            env=SIGNED,
            address=None,
            port=self.parent_port,
            ready_line=ready_line,
        )
        self.url = f"http://{self.parent_origin}"
        wait_until_answering(self.url + "/")


@pytest.fixture(scope="module", params=sorted(FRONT_ENDS))
def embedding(request: Any, module_server_factory: Any) -> Embedding:
    return Embedding(module_server_factory, request.param, allow_parent=True)


def assert_round_trip(page: BokehPage) -> None:
    """Move the slider in the browser; only the Python callback rewrites the Div and the data."""
    assert page.model_value("readout", "model.text") == "Python has not seen a change yet"
    page.set_model("frequency", "value", 3)
    page.wait_for_model("readout", "model.text === 'Python drew frequency 3'")
    x, y = data_column_js("model", "x"), data_column_js("model", "y")
    page.wait_for_model("source", f"Math.abs({y}[25] - Math.sin(3 * {x}[25])) < 1e-9")


def open_embedded(page: BokehPage, url: str) -> Any:
    response = page.page.goto(url, wait_until="load")
    assert response is not None and response.ok, f"GET {url} -> {response and response.status}"
    page.wait_for_bokeh()
    page.wait_for_painted_canvas()
    return response


def is_autoload(response: Any) -> bool:
    return "/bkapp/autoload.js" in response.url and response.request.method == "GET"


def test_server_session_page_renders_and_round_trips(
    embedding: Embedding, bokeh_page: BokehPage, serving_bokeh: bool
) -> None:
    with bokeh_page.page.expect_response(is_autoload) as autoload:
        page_response = open_embedded(bokeh_page, embedding.url + "/")
    csp = page_response.headers["content-security-policy"]
    assert f"connect-src 'self' {embedding.aperture.base_url} ws://127.0.0.1:" in csp
    # The site signed the id with the shared key; the server made its token for exactly that id.
    session_id = autoload.value.request.headers["bokeh-session-id"]
    assert session_id.count(".") == 1
    assert get_session_id(token_of(autoload.value.text())) == session_id
    if not serving_bokeh:  # an allowed parent origin gets a credentialed CORS answer
        assert autoload.value.headers["access-control-allow-origin"] == embedding.url
        assert autoload.value.headers["access-control-allow-credentials"] == "true"
    assert bokeh_page.page.title().endswith("server_session")  # embedded apps never set the title
    assert bokeh_page.model_value("greeting", "model.text") == "Hello, visitor!"
    assert_round_trip(bokeh_page)
    bokeh_page.assert_no_errors()


def test_server_document_page_passes_arguments_and_round_trips(
    embedding: Embedding, bokeh_page: BokehPage
) -> None:
    open_embedded(bokeh_page, embedding.url + "/document?name=%3Cb%3EAda")
    assert bokeh_page.model_value("greeting", "model.text") == "Hello, &lt;b&gt;Ada!"
    assert_round_trip(bokeh_page)
    bokeh_page.assert_no_errors()


def test_parent_origin_not_allowed_gets_no_websocket(
    server_factory: Any, bokeh_page: BokehPage, serving_bokeh: bool
) -> None:
    strict = Embedding(server_factory, "flask", allow_parent=False)
    page = bokeh_page.page
    sockets: list[Any] = []
    page.on("websocket", lambda socket: sockets.append(socket))
    with page.expect_response(is_autoload) as autoload:
        page.goto(strict.url + "/", wait_until="load")
    # The script itself is served (CORS `*`, not credentialed, for an origin outside the allow-list).
    assert autoload.value.status == 200
    assert autoload.value.headers["access-control-allow-origin"] == "*"
    if not serving_bokeh:  # bokeh serve says `Allow-Credentials: true` to everyone
        assert "access-control-allow-credentials" not in autoload.value.headers
    refused = re.escape(f"Refusing websocket connection from Origin 'http://{strict.parent_origin}'")
    strict.aperture.wait_for_log(refused)
    strict.aperture.wait_for_log(r'"GET /bkapp/ws" 403')
    # BokehJS gives up on the session; nothing but the refused websocket went wrong.
    deadline = time.monotonic() + 10
    while not any("Could not open websocket" in e for e in bokeh_page.errors()):
        assert time.monotonic() < deadline, f"BokehJS never gave up: {bokeh_page.errors()}"
        page.wait_for_timeout(50)
    handshake = f"WebSocket connection to 'ws://127.0.0.1:{strict.aperture.port}/bkapp/ws' failed"
    assert any(handshake in e and "403" in e for e in bokeh_page.errors())
    assert bokeh_page.errors(ignore=(WS_REFUSED,)) == []
    assert page.evaluate("() => Bokeh.documents.length") == 0  # no document ever arrived
    assert [socket.url for socket in sockets] == [f"ws://127.0.0.1:{strict.aperture.port}/bkapp/ws"]


class ParentSite:
    """A bare parent site on 127.0.0.1 (a thread of this process) serving one page at `/`."""

    def __init__(self) -> None:
        self.body = b""
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(site.body)))
                self.end_headers()
                self.wfile.write(site.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def show(self, page: BokehPage, tag: str) -> None:
        head = "<title>parent</title><link rel='icon' href='data:,'>"
        self.body = f"<!doctype html><html><head>{head}</head><body>{tag}</body></html>".encode()
        open_embedded(page, f"http://{self.origin}/")

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture(scope="module")
def plain_parent(module_server_factory: Any) -> Iterator[tuple[ServerProcess, ParentSite]]:
    """An Aperture server with signed sessions that allows the origin of a bare parent site."""
    site = ParentSite()
    try:
        server = module_server_factory(
            [EXAMPLES / "flask_embed" / "bkapp.py"], [f"--allow-websocket-origin={site.origin}"], env=SIGNED
        )
        yield server, site
    finally:
        site.close()


def test_bokehs_own_server_document_tag_works(plain_parent: Any, bokeh_page: BokehPage) -> None:
    server, site = plain_parent
    site.show(bokeh_page, bokeh_server_document(server.url("/bkapp"), arguments={"name": "Bo"}))
    assert bokeh_page.model_value("greeting", "model.text") == "Hello, Bo!"
    assert_round_trip(bokeh_page)
    bokeh_page.assert_no_errors()


def test_bokehs_own_server_session_tag_works(plain_parent: Any, bokeh_page: BokehPage) -> None:
    server, site = plain_parent
    session_id = generate_session_id(SECRET.encode(), signed=True)
    site.show(bokeh_page, bokeh_server_session(session_id=session_id, url=server.url("/bkapp")))
    assert_round_trip(bokeh_page)
    bokeh_page.assert_no_errors()

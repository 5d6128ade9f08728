"""The access log in text form: one readable line per HTTP request and per websocket session end,
secrets redacted, crafted paths escaped, gone with `--access-log no` (that it stays at
`--log-level warning` is checked in test_logs.py)."""

from __future__ import annotations

import re
import socket
import urllib.error
import urllib.request
from typing import Any

import pytest

from aperture.operations.access_log import printable, redacted_uri
from tests.support.servers import LogMark, ServerProcess
from tests.support.wsclient import BokehClient, fetch_token, ws_url

LINE = re.compile(
    r'(?P<client>\S+) "(?P<method>[A-Z]+) (?P<path>[^"]*)" (?P<status>\d{3}) (?P<ms>[\d.]+)ms '
    r"id=(?P<id>[A-Za-z0-9._:-]+)(?: app=(?P<app>\S+))?$"
)


@pytest.mark.parametrize(
    ("uri", "logged"),
    [
        ("/app", "/app"),
        ("/app?x=1", "/app?x=1"),
        ("/app?bokeh-token=abc.def&x=1", "/app?bokeh-token=REDACTED&x=1"),
        ("/app?x=1&bokeh-session-id=s3cr3t", "/app?x=1&bokeh-session-id=REDACTED"),
        ("/p/oidc/callback?code=abc&state=xyz&iss=i", "/p/oidc/callback?code=REDACTED&state=REDACTED&iss=i"),
        ("/app?code=1&state=NY", "/app?code=1&state=NY"),  # an app's own parameters stay
        ("/app?Bokeh-Token=abc", "/app?Bokeh-Token=REDACTED"),
        ("/app?bokeh%2Dtoken=abc", "/app?bokeh%2Dtoken=REDACTED"),
        ("/app?bokeh-token+=abc", "/app?bokeh-token+=REDACTED"),  # '+' decodes to a space
        ("/app?bokeh-token", "/app?bokeh-token"),  # no value, nothing to hide
        ("/app?a=bokeh-token=x", "/app?a=bokeh-token=x"),
    ],
)
def test_secret_query_parameters_are_redacted(uri: str, logged: str) -> None:
    assert redacted_uri(uri) == logged


def test_control_characters_are_escaped_and_long_paths_cut() -> None:
    assert printable("/a\nb\x1b[31m\x7f") == "/a\\x0ab\\x1b[31m\\x7f"
    assert printable("/caf\u00e9") == "/caf\u00e9"
    assert printable("/x" * 5000).endswith("...") and len(printable("/x" * 5000)) == 2003


def _get(url: str, headers: dict[str, str] | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=20) as reply:
            reply.read()
            return int(reply.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


@pytest.fixture(scope="module")
def text_server(module_server_factory: Any) -> ServerProcess:
    """The default text format."""
    return module_server_factory(["tests/apps/demo.py"])  # type: ignore[no-any-return]


async def test_text_lines_for_requests_and_websocket_ends(text_server: ServerProcess) -> None:
    server = text_server
    mark = LogMark(server)
    assert _get(server.url("/demo?bokeh-session-id=NOTINLOGS0123&x=1"), {"X-Request-Id": "text-1"}) == 200
    assert _get(server.url("/nowhere"), {"X-Request-Id": "text-404"}) == 404
    url = server.url("/demo")
    token = fetch_token(url)
    client = await BokehClient.connect(ws_url(url), token, headers={"X-Request-Id": "text-ws"})
    await client.pull()
    await client.close()
    mark.wait_for(r"websocket end .* id=text-ws")

    lines = mark.new().splitlines()
    assert "NOTINLOGS0123" not in mark.new()
    page = next(LINE.search(line) for line in lines if "id=text-1" in line)
    assert page is not None
    assert page.group("client", "method", "path", "status", "app") == (
        "127.0.0.1",
        "GET",
        "/demo?bokeh-session-id=REDACTED&x=1",
        "200",
        "/demo",
    )
    missing = next(LINE.search(line) for line in lines if "id=text-404" in line)
    assert missing is not None and missing.group("status") == "404" and missing.group("app") is None
    end = next(line for line in lines if "websocket end" in line)
    assert re.search(
        r"127\.0\.0\.1 websocket end app=/demo session=\S{12} code=\S+ open=[\d.]+s in=\d+/\d+B", end
    )


def test_access_log_no_turns_it_off(server_factory: Any) -> None:
    server = server_factory(["tests/apps/demo.py"], ["--access-log", "no"])
    mark = LogMark(server)
    assert _get(server.url("/demo"), {"X-Request-Id": "silent-1"}) == 200
    assert _get(server.url("/demo"), {"X-Request-Id": "silent-2"}) == 200
    server.stop()
    assert "silent-" not in mark.new() and '"GET /demo' not in mark.new()


def test_a_crafted_request_line_cannot_forge_a_log_line(text_server: ServerProcess) -> None:
    assert text_server.port is not None
    mark = LogMark(text_server)
    with socket.create_connection(("127.0.0.1", text_server.port), timeout=20) as sock:
        # Tornado answers 400 to ASCII control characters itself; C1 controls (NEL is a line break
        # to Python's splitlines, CSI starts a terminal escape) reach the handler.
        request = b"GET /demo?\x85forged\x9b2J HTTP/1.1\r\nHost: x\r\nX-Request-Id: crafted\r\nConnection: close\r\n\r\n"
        sock.sendall(request)
        while sock.recv(65536):
            pass
    line = mark.wait_for(r".*id=crafted.*")
    assert "\x85" not in line and "\x9b" not in line and "/demo?\\x85forged\\x9b2J" in line

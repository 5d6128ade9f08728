"""Structured logs: `--log-format json` on a real server, the formatter's robustness, request ids.

One server (`--log-format json`) serves a page view, an app that fails, an app that logs while
building and in a callback, a websocket session and a bad token; then every line it wrote to
stderr must be a JSON object with the required keys, and the lines must carry what is known of
their request or session.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from aperture.config import resolve
from aperture.errors import ConfigError
from aperture.operations import log_context, logs
from aperture.operations.json_logs import MAX_TEXT, JsonFormatter
from aperture.operations.log_context import ContextFilter, request_id_from
from aperture.security.tokens import get_session_id
from tests.support.servers import LogMark, ServerProcess
from tests.support.wsclient import BokehClient, fetch_token, model_changed, model_id, ws_url

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
REQUIRED = ("time", "level", "logger", "message")

LOGGING_APP = """
    import logging
    from bokeh.io import curdoc
    from bokeh.models import Slider

    log = logging.getLogger("logging_app")
    log.warning("building a page")
    slider = Slider(start=0, end=10, value=1, step=1, name="slider")

    def changed(attr, old, new):
        log.warning("slider moved to %s", new)

    slider.on_change("value", changed)
    curdoc().add_root(slider)
"""


# -- the formatter --------------------------------------------------------------------------------


def _record(msg: Any, *args: Any, level: int = logging.INFO, **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("app.code", level, __file__, 1, msg, args or None, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def _line(record: logging.LogRecord) -> dict[str, Any]:
    text = JsonFormatter().format(record)
    assert "\n" not in text and "\r" not in text and text.isascii()
    parsed = json.loads(text)
    assert isinstance(parsed, dict)
    for key in REQUIRED:
        assert key in parsed
    assert TIME.match(parsed["time"]), parsed["time"]
    return parsed


def test_required_keys_and_time_format() -> None:
    record = _record("hello %s", "world", level=logging.WARNING)
    record.created = 1_800_000_000.5
    parsed = _line(record)
    assert parsed["time"] == "2027-01-15T08:00:00.500Z"
    assert (parsed["level"], parsed["logger"], parsed["message"]) == ("WARNING", "app.code", "hello world")


@pytest.mark.parametrize(
    ("msg", "args", "expect"),
    [
        ("%d apples", ("many",), "'%d apples'"),  # argument of the wrong type
        ("%s and %s", ("one",), "'%s and %s'"),  # too few arguments
        ("no placeholders", ("extra",), "no placeholders"),  # too many arguments
        ({"a": 1}, (), "{'a': 1}"),  # not a string
        (b"\xff bytes", (), "\\xff bytes"),
    ],
)
def test_messages_that_do_not_format_still_give_a_line(msg: Any, args: tuple[Any, ...], expect: str) -> None:
    assert expect in _line(_record(msg, *args))["message"]


def test_objects_whose_str_raises_do_not_break_the_line() -> None:
    class Hostile:
        def __str__(self) -> str:
            raise RuntimeError("no")

        def __repr__(self) -> str:
            raise RuntimeError("no either")

    parsed = _line(_record(Hostile(), extra_field=Hostile()))
    assert parsed["message"]


def test_control_characters_huge_messages_and_odd_unicode_stay_one_line() -> None:
    nasty = 'line1\nline2\r\x00\x1b[31m"quoted"\u2028\u2029\ud800 end'
    assert _line(_record(nasty))["message"] == nasty
    huge = _line(_record("x" * (MAX_TEXT * 3)))["message"]
    assert huge.startswith("x" * 100) and len(huge) < MAX_TEXT + 100 and "more characters" in huge


def test_exceptions_stacks_extra_fields_and_context() -> None:
    try:
        raise ValueError("broken <b>")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    record.user = "ann"
    record.ratio = float("nan")
    record.aperture = {"status": 500, "duration_ms": 1.5}
    with log_context.bound(app="/demo", session="S" * 44, request_id="r-1", client="127.0.0.1"):
        ContextFilter().filter(record)
    parsed = _line(record)
    assert "ValueError: broken <b>" in parsed["exception"] and "Traceback" in parsed["exception"]
    assert parsed["user"] == "ann" and parsed["ratio"] == "nan"
    assert parsed["status"] == 500 and parsed["duration_ms"] == 1.5
    assert (parsed["app"], parsed["request_id"], parsed["client"]) == ("/demo", "r-1", "127.0.0.1")
    assert parsed["session"] == "S" * 12  # never a whole session id


def test_text_format_may_name_context_fields_and_bad_formats_fail_at_start_up() -> None:
    formatter = logs.text_formatter("%(levelname)s app=%(app)s id=%(request_id)s %(message)s")
    record = _record("hi")
    with log_context.bound(app="/demo", request_id="r-9"):
        ContextFilter().filter(record)
    assert formatter.format(record) == "INFO app=/demo id=r-9 hi"
    assert formatter.format(_record("bare")) == "INFO app=- id=- bare"
    for bad in ("no fields at all", "%(nosuchfield)s", "%(message)"):
        with pytest.raises(ConfigError, match="--log-format"):
            logs.text_formatter(bad)


def test_configure_json_mode_routes_every_logger_and_warnings(tmp_path: Path) -> None:
    target = tmp_path / "log.jsonl"
    config = resolve({"log_format": "json", "log_file": str(target), "log_level": "warning"}, {})
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogger("aperture").level)
    try:
        logs.configure(config)
        logging.getLogger("tornado.application").error("from tornado")
        logging.getLogger("some_app").warning("from an app")
        logging.getLogger("aperture.access").info("access line")  # kept at --log-level warning
        logging.getLogger("aperture.server").info("left out at --log-level warning")
        logging.getLogger("py.warnings").warning("a captured warning")
        for handler in root.handlers:
            handler.flush()
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
            handler.close()
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
        logging.getLogger("aperture").setLevel(saved[2])
        logging.getLogger("aperture.access").setLevel(logging.NOTSET)
        logging.captureWarnings(False)
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert [line["logger"] for line in lines] == [
        "tornado.application",
        "some_app",
        "aperture.access",
        "py.warnings",
    ]


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("abc-123_X.y:z", True),
        ("a" * 64, True),
        ("a" * 65, False),
        ("a" * 10_000, False),
        ("", False),
        ('"quoted"', False),
        ("two words", False),
        ("line\nbreak", False),
        ("abc\n", False),
        ("é", False),
        (None, False),
    ],
)
def test_request_ids_from_clients_are_kept_only_when_short_and_plain(given: str | None, kept: bool) -> None:
    chosen = request_id_from(given)
    assert (chosen == given) is kept
    assert re.fullmatch(r"[A-Za-z0-9._:-]{1,64}", chosen)


# -- a real server ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(module_server_factory: Any, tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    directory = tmp_path_factory.mktemp("json_logs")
    app = directory / "logging_app.py"
    app.write_text(textwrap.dedent(LOGGING_APP))
    return module_server_factory(  # type: ignore[no-any-return]
        ["tests/apps/demo.py", "tests/apps/broken.py", str(app)], ["--log-format", "json"]
    )


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            response.read()
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


def _raw_request_id(port: int, header_block: bytes) -> str | None:
    """Send a GET with a hand-made X-Request-Id header; return the id the server answered with
    (None when Tornado refused the header itself with a 400)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + header_block + b"Connection: close\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    if head.startswith("HTTP/1.1 400"):
        return None
    assert head.startswith("HTTP/1.1 200"), head
    ids = re.findall(r"(?im)^X-Request-Id: ([^\r\n]*)", head)
    assert len(ids) == 1, head
    return ids[0]


def _json_lines(server: ServerProcess) -> list[dict[str, Any]]:
    lines = server.stderr().splitlines()
    assert lines
    parsed = []
    for line in lines:
        try:
            item = json.loads(line)
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
        assert isinstance(item, dict) and all(key in item for key in REQUIRED), line
        assert TIME.match(item["time"]), line
        parsed.append(item)
    return parsed


def _access(lines: list[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    found = [line for line in lines if line["logger"] == "aperture.access"]
    return [line for line in found if all(line.get(k) == v for k, v in match.items())]


async def test_every_line_is_json_with_context_status_and_duration(server: ServerProcess) -> None:
    mark = LogMark(server)
    status, headers = _get(server.url("/demo"), {"X-Request-Id": "page-view-1"})
    assert status == 200 and headers["X-Request-Id"] == "page-view-1"
    status, headers = _get(server.url("/broken"), {"X-Request-Id": "failing-view"})
    assert status == 500 and headers["X-Request-Id"] == "failing-view"

    url = server.url("/logging_app")
    token = fetch_token(url, {"X-Request-Id": "logging-view"})
    client = await BokehClient.connect(ws_url(url), token, headers={"X-Request-Id": "logging-ws"})
    doc = (await client.pull()).content["doc"]
    await client.send("PATCH-DOC", model_changed(model_id(doc, "slider"), "value", 5))
    mark.wait_for("slider moved to 5")
    await client.close()
    refused = await BokehClient.connect(ws_url(url), "not-a-token", wait_ack=False)
    assert (await refused.closed()).code == 1008
    mark.wait_for(r'"kind":"websocket".*"code":1008')

    lines = _json_lines(server)
    page = _access(lines, request_id="page-view-1")[0]
    assert (page["method"], page["path"], page["status"], page["app"]) == ("GET", "/demo", 200, "/demo")
    assert page["client"] == "127.0.0.1" and isinstance(page["duration_ms"], float)
    assert _access(lines, request_id="failing-view")[0]["status"] == 500
    failure = [
        line for line in lines if line["level"] == "ERROR" and line.get("request_id") == "failing-view"
    ]
    assert failure and failure[0]["app"] == "/broken" and "the data file is missing" in failure[0]["message"]

    built = [
        line
        for line in lines
        if line["message"] == "building a page" and line.get("request_id") == "logging-view"
    ]
    assert built and (built[0]["app"], built[0]["client"]) == ("/logging_app", "127.0.0.1")
    moved = [line for line in lines if line["message"] == "slider moved to 5"][0]
    assert moved["app"] == "/logging_app"  # callbacks run on worker threads: app and session only
    assert moved["session"] == doc_session_prefix(token)

    upgrade = _access(lines, request_id="logging-ws", kind="http")
    assert upgrade and upgrade[0]["status"] == 101
    ended = _access(lines, request_id="logging-ws", kind="websocket")
    assert ended and ended[0]["session"] == doc_session_prefix(token) and ended[0]["app"] == "/logging_app"
    assert ended[0]["messages_in"] >= 2 and ended[0]["duration_ms"] > 0
    assert _access(lines, kind="websocket", code=1008)


def doc_session_prefix(token: str) -> str:
    """The first 12 characters of the session id a token names."""
    return get_session_id(token)[:12]


def test_tokens_and_session_ids_in_queries_are_redacted(server: ServerProcess) -> None:
    mark = LogMark(server)
    _get(server.url("/demo?bokeh-token=SECRETTOKENVALUE&x=1"))
    _get(server.url("/demo?bokeh-session-id=SECRETSESSIONVALUE1234&y=2"))
    _get(server.url("/demo?BOKEH-TOKEN=SECRETCAPS&bokeh%2Dtoken=SECRETENCODED"))
    mark.wait_for(r"/demo\?BOKEH-TOKEN")
    lines = [json.loads(line) for line in mark.new().splitlines()]
    access = [line for line in lines if line["logger"] == "aperture.access"]
    assert len(access) == 3
    for line in access:
        assert "SECRET" not in json.dumps(line), line
    assert access[0]["path"] == "/demo?bokeh-token=REDACTED&x=1"
    assert access[1]["path"] == "/demo?bokeh-session-id=REDACTED&y=2"


def test_abusive_request_ids_are_replaced(server: ServerProcess) -> None:
    assert server.port is not None
    assert _raw_request_id(server.port, b"X-Request-Id: good-id.1\r\n") == "good-id.1"
    for block in (
        b'X-Request-Id: "quoted"\r\n',
        b"X-Request-Id: " + b"a" * 10_000 + b"\r\n",
        b"X-Request-Id: \xc3\xa9t\xc3\xa9\r\n",
        b"X-Request-Id: <script>\r\n",
        b"X-Request-Id: one\r\nX-Request-Id: two\r\n",  # repeated: joined with ',' by Tornado
    ):
        chosen = _raw_request_id(server.port, block)
        assert chosen is not None and re.fullmatch(r"[0-9a-f]{16}", chosen), (block[:40], chosen)
    # Tornado itself answers 400 to a folded header or a control character; the server goes on.
    assert _raw_request_id(server.port, b"X-Request-Id: first\r\n line-folded\r\n") is None
    assert _raw_request_id(server.port, b"X-Request-Id: a\x0bb\r\n") is None
    assert _raw_request_id(server.port, b"X-Request-Id: after-abuse\r\n") == "after-abuse"
    _json_lines(server)  # still all JSON

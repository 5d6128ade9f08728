"""`aperture.embed` against `bokeh.embed` as a real peer, and both against a running server.

For many argument combinations both libraries must name the same autoload URL (apart from the
random element id), send the same headers with the same credentials flag, and refuse the same
arguments with the same `ValueError`. Tags from either library, fetched the way the browser
would, must get a 200 script from the server holding a token for the right session.
"""

from __future__ import annotations

import itertools
import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import pytest
from bokeh.embed import server_document as bokeh_server_document
from bokeh.embed import server_session as bokeh_server_session

from aperture import embed
from aperture.security.tokens import (
    generate_secret_key,
    generate_session_id,
    get_session_id,
    get_token_payload,
)

CSS_SAFE_ID = re.compile(
    r"^(?:[a-f][0-9a-f]{7}|bk-[0-9a-f]{8})-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
)


@dataclass(frozen=True)
class Tag:
    """What an embed tag does, read back from its text."""

    element_id: str
    src: str
    headers: tuple[tuple[str, str], ...]
    with_credentials: bool

    @property
    def normalized_src(self) -> str:
        return self.src.replace(self.element_id, "<element-id>")


def _read_js_string(text: str, start: int) -> tuple[str, int]:
    """The JS string literal at `start` (either quote), and the index after it."""
    quote = text[start]
    assert quote in "\"'", f"no string literal at {text[start : start + 20]!r}"
    if quote == '"':
        value, end = json.JSONDecoder().raw_decode(text, start)
        return value, end
    end = text.index("'", start + 1)
    return text[start + 1 : end], end + 1


def parse_tag(tag: str) -> Tag:
    match = re.fullmatch(r'<script id="([^"]+)">(.*)</script>', tag, re.DOTALL)
    assert match, tag
    element_id, body = match.groups()
    opened = re.search(r"xhr\.open\((['\"])GET\1, ", body)
    assert opened, body
    src, _ = _read_js_string(body, opened.end())
    headers = []
    for call in re.finditer(r"xhr\.setRequestHeader\(", body):
        name, after = _read_js_string(body, call.end())
        value, _ = _read_js_string(body, after + len(", "))
        headers.append((name, value))
    credentials = re.search(r"xhr\.withCredentials = (true|false);", body)
    assert credentials, body
    return Tag(element_id, src, tuple(headers), credentials.group(1) == "true")


# -- the same tag as bokeh.embed ------------------------------------------------------------

URLS = [
    "default",
    "http://127.0.0.1:5006/demo",
    "http://h:1/a/b/",
    "https://example.com/",
    "http://h",
    "http://h//",
    "http://h/app?x=1",
    "https://h:443/a b",
    "HTTP://H/App",
    "Ws://h",
    "/app",
    "app",
    "",
]
ARGUMENTS: list[dict[str, Any] | None] = [
    None,
    {},
    {"a b": "c&d", "bokeh-x": "dropped", "n": 1},
    {"ü": "é/?#", "none": None, "bokeh-session-id": "x"},
]


@pytest.mark.parametrize(
    ("url", "relative_urls", "resources", "arguments"),
    list(itertools.product(URLS, [False, True], ["default", None], ARGUMENTS)),
)
def test_server_document_names_the_same_autoload_url(
    url: str, relative_urls: bool, resources: Any, arguments: Any
) -> None:
    kwargs = dict(url=url, relative_urls=relative_urls, resources=resources, arguments=arguments)
    ours, theirs = parse_tag(embed.server_document(**kwargs)), parse_tag(bokeh_server_document(**kwargs))
    assert ours.normalized_src == theirs.normalized_src
    assert ours.headers == theirs.headers == ()
    assert ours.with_credentials is theirs.with_credentials is False


@pytest.mark.parametrize(
    ("headers", "with_credentials"),
    [(None, False), (None, True), ({}, True), ({"X-Token": "abc", "X-Count": 3}, False)],
)
def test_server_document_sends_the_same_headers(headers: Any, with_credentials: bool) -> None:
    kwargs = dict(url="http://h:1/app", headers=headers, with_credentials=with_credentials)
    ours, theirs = parse_tag(embed.server_document(**kwargs)), parse_tag(bokeh_server_document(**kwargs))
    assert (ours.normalized_src, ours.headers, ours.with_credentials) == (
        theirs.normalized_src,
        theirs.headers,
        theirs.with_credentials,
    )


@pytest.mark.parametrize(
    ("url", "relative_urls", "resources", "headers", "with_credentials", "session_id"),
    [
        (url, relative, resources, headers, credentials, session_id)
        for url, relative, resources in itertools.product(URLS, [False, True], ["default", None])
        for headers, credentials in [
            (None, False),
            (None, True),
            ({"X-Token": "abc"}, False),
            ({"Bokeh-Session-Id": "replaced", "X-Other": "kept"}, False),
        ]
        for session_id in ["abc", ""]
    ],
)
def test_server_session_names_the_same_autoload_url_and_headers(
    url: str, relative_urls: bool, resources: Any, headers: Any, with_credentials: bool, session_id: str
) -> None:
    kwargs = dict(
        session_id=session_id,
        url=url,
        relative_urls=relative_urls,
        resources=resources,
        headers=headers,
        with_credentials=with_credentials,
    )
    ours, theirs = parse_tag(embed.server_session(**kwargs)), parse_tag(bokeh_server_session(**kwargs))
    assert ours.normalized_src == theirs.normalized_src
    assert ours.headers == theirs.headers
    assert ("Bokeh-Session-Id", session_id) in ours.headers
    assert ours.with_credentials is theirs.with_credentials is with_credentials


def test_server_session_accepts_a_model_and_ignores_it() -> None:
    from bokeh.models import Div

    div = Div()
    ours = parse_tag(embed.server_session(div, session_id="s", url="http://h/app"))
    theirs = parse_tag(bokeh_server_session(div, session_id="s", url="http://h/app"))
    assert (ours.normalized_src, ours.headers) == (theirs.normalized_src, theirs.headers)


def test_the_documented_example_urls() -> None:
    tag = parse_tag(embed.server_document("http://127.0.0.1:16006/demo"))
    assert tag.normalized_src == (
        "http://127.0.0.1:16006/demo/autoload.js?bokeh-autoload-element=<element-id>"
        "&bokeh-app-path=/demo&bokeh-absolute-url=http://127.0.0.1:16006/demo"
    )
    tag = parse_tag(
        embed.server_document(
            "http://127.0.0.1:16006/demo",
            relative_urls=True,
            resources=None,
            arguments={"a b": "c&d", "bokeh-x": "dropped", "n": 1},
        )
    )
    assert tag.normalized_src == (
        "http://127.0.0.1:16006/demo/autoload.js?bokeh-autoload-element=<element-id>"
        "&bokeh-app-path=/demo&resources=none&a+b=c%26d&n=1"
    )


def test_element_ids_are_unique_css_safe_uuids() -> None:
    ids = [parse_tag(embed.server_document()).element_id for _ in range(200)]
    ids += [parse_tag(embed.server_session(session_id="s")).element_id for _ in range(200)]
    assert len(set(ids)) == len(ids)
    assert all(CSS_SAFE_ID.match(element_id) for element_id in ids), ids


def test_the_tag_has_bokehs_shape() -> None:
    tag = embed.server_session(session_id="s", url="http://h/app", headers={"X-A": "b"})
    assert tag.startswith('<script id="') and tag.endswith("</script>")
    body = tag[tag.index(">") + 1 : -len("</script>")]
    steps = [
        "new XMLHttpRequest()",
        'xhr.responseType = "blob"',
        'xhr.open("GET", ',
        'xhr.setRequestHeader("X-A", "b")',
        'xhr.setRequestHeader("Bokeh-Session-Id", "s")',
        "xhr.withCredentials = false",
        "xhr.onload = function (event)",
        "URL.createObjectURL(event.target.response)",
        "document.body.appendChild(script)",
        "xhr.send()",
    ]
    positions = [body.index(step) for step in steps]
    assert positions == sorted(positions)


@pytest.mark.parametrize(
    "hostile",
    ['quote " and backslash \\', "</script><script>alert(1)</script>", "<!-- x -->", "line\nbreak\u2028"],
)
def test_values_cannot_escape_the_string_or_the_element(hostile: str) -> None:
    tag = embed.server_session(
        session_id=hostile, url=f"http://h/{hostile}", headers={hostile: hostile}, relative_urls=True
    )
    assert tag.count("</script") == 1 and tag.endswith("</script>")
    assert "<!--" not in tag
    parsed = parse_tag(tag)
    assert parsed.headers == ((hostile, hostile), ("Bokeh-Session-Id", hostile))
    assert parsed.src.startswith(f"http://h/{hostile}/autoload.js?")


ERROR_CASES = [
    (bokeh_server_document, embed.server_document, dict(url="ws://h:5006/app")),
    (bokeh_server_document, embed.server_document, dict(url="wss://h/app")),
    (bokeh_server_document, embed.server_document, dict(url="ws")),
    (bokeh_server_document, embed.server_document, dict(resources="inline")),
    (bokeh_server_document, embed.server_document, dict(resources="cdn")),
    (bokeh_server_document, embed.server_document, dict(resources="")),
    (bokeh_server_document, embed.server_document, dict(headers={"a": "b"}, with_credentials=True)),
    (bokeh_server_session, embed.server_session, dict()),
    (bokeh_server_session, embed.server_session, dict(session_id=None, url="http://h/app")),
    (bokeh_server_session, embed.server_session, dict(session_id="s", url="ws://h/app")),
    (bokeh_server_session, embed.server_session, dict(session_id="s", resources="server")),
    (
        bokeh_server_session,
        embed.server_session,
        dict(session_id="s", headers={"a": "b"}, with_credentials=True),
    ),
]


@pytest.mark.parametrize(("bokeh_function", "ours", "kwargs"), ERROR_CASES)
def test_the_same_arguments_are_refused_with_the_same_message(
    bokeh_function: Any, ours: Any, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(ValueError) as expected:
        bokeh_function(**kwargs)
    with pytest.raises(ValueError) as got:
        ours(**kwargs)
    assert str(got.value) == str(expected.value)


# -- tags from both libraries against a running server ------------------------------------

SECRET = generate_secret_key()
ALLOWED_ORIGIN = "http://parent.example:8000"


class Response:
    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status, self.headers, self.text = status, headers, body.decode("utf-8", "replace")


def fetch(url: str, headers: tuple[tuple[str, str], ...] = (), method: str = "GET") -> Response:
    request = urllib.request.Request(url, headers=dict(headers), method=method)
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return Response(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        with error:
            return Response(error.code, error.headers, error.read())


def token_of(script: str) -> str:
    match = re.search(r'"token"\s*:\s*"([A-Za-z0-9_.-]+)"', script)
    assert match, script[:2000]
    return match.group(1)


@pytest.fixture(scope="module")
def signed_server(module_server_factory: Any) -> Any:
    return module_server_factory(
        ["tests/apps/demo.py"],
        ["--allow-websocket-origin=parent.example:8000"],
        env={"BOKEH_SIGN_SESSIONS": "yes", "BOKEH_SECRET_KEY": SECRET},
    )


LIBRARIES = {
    "aperture": (embed.server_document, embed.server_session),
    "bokeh": (bokeh_server_document, bokeh_server_session),
}


@pytest.mark.parametrize("library", sorted(LIBRARIES))
@pytest.mark.parametrize("relative_urls", [False, True])
def test_server_document_tag_fetches_a_new_session(
    signed_server: Any, library: str, relative_urls: bool
) -> None:
    document, _ = LIBRARIES[library]
    tag = parse_tag(
        document(signed_server.url("/demo"), relative_urls=relative_urls, arguments={"name": "Ada"})
    )
    response = fetch(tag.src, tag.headers)
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/javascript"
    assert f'"elementid":"{tag.element_id}"' in response.text.replace(" ", "")
    token = token_of(response.text)
    assert get_token_payload(token)["arguments"]["name"] == [b"Ada"]
    assert get_session_id(token).count(".") == 1  # the server made (and signed) the id


@pytest.mark.parametrize("library", sorted(LIBRARIES))
def test_server_session_tag_fetches_the_signed_session(signed_server: Any, library: str) -> None:
    _, session = LIBRARIES[library]
    session_id = generate_session_id(SECRET.encode("utf-8"), signed=True)
    tag = parse_tag(session(session_id=session_id, url=signed_server.url("/demo")))
    response = fetch(tag.src, tag.headers)
    assert response.status == 200
    assert get_session_id(token_of(response.text)) == session_id


@pytest.mark.parametrize("library", sorted(LIBRARIES))
def test_server_session_tag_with_an_unsigned_id_is_refused(signed_server: Any, library: str) -> None:
    _, session = LIBRARIES[library]
    tag = parse_tag(session(session_id="not-signed", url=signed_server.url("/demo")))
    assert fetch(tag.src, tag.headers).status == 403


def test_preflight_for_the_session_header_is_answered(signed_server: Any) -> None:
    tag = parse_tag(embed.server_session(session_id="s", url=signed_server.url("/demo")))
    response = fetch(
        tag.src,
        (
            ("Origin", ALLOWED_ORIGIN),
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "bokeh-session-id"),
        ),
        method="OPTIONS",
    )
    assert response.status == 200
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert allowed == "*" or "bokeh-session-id" in allowed
    assert "GET" in response.headers["Access-Control-Allow-Methods"]


def test_autoload_is_credentialed_only_for_allowed_origins(signed_server: Any, serving_bokeh: bool) -> None:
    if serving_bokeh:
        pytest.skip("bokeh serve reflects any origin with cookies; the restriction is Aperture's")
    tag = parse_tag(embed.server_document(signed_server.url("/demo"), with_credentials=True))
    allowed = fetch(tag.src, (("Origin", ALLOWED_ORIGIN), ("Cookie", "a=b")))
    assert allowed.status == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert allowed.headers["Access-Control-Allow-Credentials"] == "true"
    stranger = fetch(tag.src, (("Origin", "http://elsewhere.example"), ("Cookie", "a=b")))
    assert stranger.status == 200
    assert stranger.headers["Access-Control-Allow-Origin"] == "*"
    assert stranger.headers.get("Access-Control-Allow-Credentials") is None

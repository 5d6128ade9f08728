"""Websocket origin policy: allowlist parsing, Bokeh's matching, and Tornado 6.6's shortcuts.

The matrix is auth-security.md §5 (verified against `bokeh serve` on Tornado 6.6.1, which was
reached as `127.0.0.1:5006` so that `Origin: http://localhost:5006` is not the Host). The
differential tests compare with `bokeh.server.util` on generated input.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest
from bokeh.server.util import check_allowlist, create_hosts_allowlist
from hypothesis import given, settings
from hypothesis import strategies as st

from aperture.security.origins import (
    has_wildcard,
    origin_allowed,
    parse_allowlist,
    websocket_origin_allowed,
)


@pytest.fixture(autouse=True, scope="module")
def _quiet_bokeh_wildcard_warnings() -> Iterator[None]:
    logger = logging.getLogger("bokeh.server.util")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


# --- parse_allowlist -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ([], ()),
        (["*"], ("*",)),
        (["foo.com"], ("foo.com:80",)),
        (["foo.com:8080", "*.bar.com"], ("foo.com:8080", "*.bar.com:80")),
        (["192.168.*.*"], ("192.168.*.*:80",)),
        (["*:80"], ("*:80",)),
        (["FOO.com"], ("FOO.com:80",)),  # kept as written; never matches a lower-cased origin
        (["foo: 80", "foo:+5", "foo:-1"], ("foo: 80", "foo:+5", "foo:-1")),  # anything int() takes
        (["a", "a"], ("a:80", "a:80")),
    ],
)
def test_parse_allowlist(entries: list[str], expected: tuple[str, ...]) -> None:
    assert parse_allowlist(entries) == expected
    assert parse_allowlist(iter(entries)) == expected


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("", "Empty host value"),
        (":80", "Empty host value"),
        (":", "Invalid port in host value: :"),
        ("foo:", "Invalid port in host value: foo:"),
        ("foo:x", "Invalid port in host value: foo:x"),
        ("*:*", "Invalid port in host value: *:*"),
        ("a:b:c", "Invalid host value: a:b:c"),
        ("[::1]:80", "Invalid host value: [::1]:80"),
    ],
)
def test_parse_allowlist_errors(entry: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_allowlist(["ok.com", entry])
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("entry", "wild"),
    [("*", True), ("*:80", True), ("*.bar.com", True), ("foo.com:*", True), ("foo.com:80", False)],
)
def test_has_wildcard(entry: str, wild: bool) -> None:
    assert has_wildcard(entry) is wild


# --- the verified matrix -------------------------------------------------------------------------

COLUMNS = [
    "http://foo.com",
    "https://foo.com",
    "http://foo.com:8080",
    "http://a.bar.com",
    "http://a.b.bar.com",
    "http://baz.com:9999",
    "http://localhost:5006",
    "null",
]
ROWS: list[tuple[str, tuple[str, ...], str]] = [
    # (config, allowlist as the server builds it, results per column: o = allowed, x = 403)
    ("default", ("localhost:5006",), "xxxxxxox"),
    ("--allow-websocket-origin foo.com", parse_allowlist(["foo.com"]), "ooxxxxxx"),
    ("foo.com:8080 + *.bar.com", parse_allowlist(["foo.com:8080", "*.bar.com"]), "xxooxxxx"),
    ("CLI foo.com + env baz.com (raw, replaces)", ("baz.com",), "xxxxxoxx"),
    ("*:80", parse_allowlist(["*:80"]), "ooxooxxo"),
    ("*", parse_allowlist(["*"]), "oooooooo"),
    ("unix socket, no entries", (), "xxxxxxxx"),
]
MATRIX = [
    pytest.param(allowlist, origin, marks[i] == "o", id=f"{config}|{origin}")
    for config, allowlist, marks in ROWS
    for i, origin in enumerate(COLUMNS)
]


@pytest.mark.parametrize(("allowlist", "origin", "allowed"), MATRIX)
def test_origin_matrix(allowlist: tuple[str, ...], origin: str, allowed: bool) -> None:
    assert origin_allowed(origin, allowlist) is allowed
    # a browser page on another origin: no Sec-Fetch-Site shortcut applies
    for sec_fetch_site in (None, "cross-site", "same-site"):
        decision = websocket_origin_allowed(
            origin=origin, host="127.0.0.1:5006", sec_fetch_site=sec_fetch_site, allowlist=allowlist
        )
        assert decision is allowed
    assert check_allowlist(urlparse(origin).netloc.lower(), allowlist) is allowed


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://192.168.1.2", True),
        ("https://192.168.250.1", True),
        ("http://192.168.1.2:8080", False),
        ("http://192.168.1", False),
        ("http://192.168.1.2.3", False),
        ("http://10.168.1.2", False),
    ],
)
def test_label_wildcards(origin: str, allowed: bool) -> None:
    assert origin_allowed(origin, parse_allowlist(["192.168.*.*"])) is allowed


@pytest.mark.parametrize(
    ("origin", "allowlist", "allowed"),
    [
        ("HTTP://FOO.COM", ("foo.com:80",), True),
        ("http://foo.com", ("FOO.com:80",), False),
        ("http://foo.com:8080", ("foo.com:*",), True),
        ("http://foo.com", ("foo.com:*",), True),
        ("http://foo.com:1", ("foo.com",), True),  # raw env entry: any port
        ("ws://foo.com", ("foo.com:80",), True),  # scheme ignored
        ("http://user@foo.com", ("foo.com:80",), False),  # netloc includes userinfo
        ("foo.com", ("foo.com:80",), False),  # no scheme: no netloc
        ("null", ("*",), True),
        ("", ("*:80",), True),
        ("http://[::1]:5006", ("[::1]:5006",), True),
        ("http://[::1", ("*",), False),  # unparsable: refused, never raised
    ],
)
def test_origin_edge_cases(origin: str, allowlist: tuple[str, ...], allowed: bool) -> None:
    assert origin_allowed(origin, allowlist) is allowed


# --- Tornado 6.6 step 0 --------------------------------------------------------------------------

LOCAL = ("localhost:5006",)


@pytest.mark.parametrize(
    ("origin", "host", "sec_fetch_site", "allowlist", "allowed"),
    [
        # Sec-Fetch-Site same-origin / none: allowed, the list is not consulted
        ("http://evil.com", "localhost:5006", "same-origin", (), True),
        ("http://evil.com", "localhost:5006", "none", (), True),
        (None, None, "none", (), True),
        # values are compared as sent: other spellings fall through to the list
        ("http://evil.com", "localhost:5006", "Same-Origin", LOCAL, False),
        ("http://localhost:5006", "localhost:5006", "SAME-ORIGIN", LOCAL, True),
        # no Sec-Fetch-Site: no Origin means a non-browser client
        (None, "localhost:5006", None, (), True),
        (None, None, None, (), True),
        # no Sec-Fetch-Site: Origin netloc equal to Host (case-insensitive, scheme ignored, ports literal)
        ("http://127.0.0.1:5006", "127.0.0.1:5006", None, LOCAL, True),
        ("https://127.0.0.1:5006", "127.0.0.1:5006", None, (), True),
        ("HTTP://App.Example.com", "app.example.COM", None, (), True),
        ("http://app.example.com", "app.example.com:80", None, (), False),
        ("http://app.example.com:80", "app.example.com", None, (), False),
        ("http://evil.com", "localhost:5006", None, LOCAL, False),
        ("http://evil.com", None, None, LOCAL, False),
        ("null", "localhost:5006", None, LOCAL, False),
        ("null", "localhost:5006", None, ("*:80",), True),
        ("", None, None, (), True),  # empty Origin, no Host: the netlocs are both empty
        ("", "localhost:5006", None, ("*",), True),
        ("http://[::1", "localhost:5006", None, ("*",), False),
        # same-site / cross-site (or anything else): only the list, and it needs an Origin
        ("http://127.0.0.1:5006", "127.0.0.1:5006", "cross-site", LOCAL, False),
        ("http://localhost:5006", "127.0.0.1:5006", "cross-site", LOCAL, True),
        ("http://localhost:5006", "127.0.0.1:5006", "same-site", LOCAL, True),
        ("http://foo.com", "localhost:5006", "same-site", parse_allowlist(["foo.com"]), True),
        (None, "localhost:5006", "cross-site", ("*",), False),
        ("", "localhost:5006", "cross-site", ("*",), False),
        (None, "localhost:5006", "", ("*",), False),
        ("http://foo.com", "localhost:5006", "", ("*",), True),
    ],
)
def test_websocket_origin_allowed(
    origin: str | None,
    host: str | None,
    sec_fetch_site: str | None,
    allowlist: tuple[str, ...],
    allowed: bool,
) -> None:
    decision = websocket_origin_allowed(
        origin=origin, host=host, sec_fetch_site=sec_fetch_site, allowlist=allowlist
    )
    assert decision is allowed


# --- differential against bokeh.server.util -----------------------------------------------------

_entry = st.text(alphabet="ab.*:8-0 ", max_size=8)
_host = st.text(alphabet="ab.*:8", max_size=10)


@settings(max_examples=500, deadline=None)
@given(entries=st.lists(_entry, min_size=1, max_size=4))
def test_parse_allowlist_matches_bokeh(entries: list[str]) -> None:
    try:
        expected: object = tuple(create_hosts_allowlist(entries, 5006))
    except ValueError as exc:
        expected = str(exc)
    try:
        ours: object = parse_allowlist(entries)
    except ValueError as exc:
        ours = str(exc)
    assert ours == expected


@settings(max_examples=1000, deadline=None)
@given(host=_host, allowlist=st.lists(_host, max_size=4), scheme=st.sampled_from(["http://", "https://", ""]))
def test_origin_allowed_matches_bokeh(host: str, allowlist: list[str], scheme: str) -> None:
    origin = scheme + host
    netloc = urlparse(origin).netloc.lower()
    assert origin_allowed(origin, allowlist) is check_allowlist(netloc, allowlist)

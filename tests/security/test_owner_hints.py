"""Owner hints: the parser admits only `HOST:PORT|N` forms; signatures bind route and session."""

from __future__ import annotations

import ipaddress
import string
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aperture.security.owner_hints import (
    MAX_WORKERS,
    OwnerHint,
    format_hint,
    parse_hint,
    parse_instance,
    sign_hint,
    verify_hint,
)

KEY = b"k" * 32

labels = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9-]{0,20}[A-Za-z0-9])?", fullmatch=True).filter(
    lambda label: not label.isdigit()
)
dns_names = st.lists(labels, min_size=1, max_size=4).map(".".join)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(lambda a: f"[{a}]")
hosts = st.one_of(dns_names, ipv4, ipv6)
ports = st.integers(1, 65535)
instances = st.builds(lambda h, p: f"{h}:{p}", hosts, ports)
workers = st.one_of(st.none(), st.integers(0, MAX_WORKERS - 1))
hints = st.builds(OwnerHint, st.one_of(st.none(), instances), workers).filter(
    lambda h: h.instance is not None or h.worker is not None
)


@given(hints)
def test_round_trip(hint):
    assert parse_hint(format_hint(hint)) == hint


@given(st.text(max_size=80))
def test_arbitrary_text_is_refused_or_is_a_clean_address(text):
    try:
        hint = parse_hint(text)
    except ValueError:
        return
    assert format_hint(hint) == text  # nothing is dropped or normalised away
    if hint.instance is not None:
        url = urlsplit(f"ws://{hint.instance}/app/ws")
        assert url.path == "/app/ws" and not url.query and not url.fragment
        assert url.username is None and url.password is None
        assert f"{url.hostname}:{url.port}".lower() == hint.instance.lower().replace("[", "").replace("]", "")


alphabet = string.ascii_letters + string.digits + ":/@?#[]|.%-_ \t\r\n\\"


@given(st.text(alphabet=alphabet, max_size=60))
def test_url_metacharacters_never_survive(text):
    try:
        hint = parse_hint(text)
    except ValueError:
        return
    if hint.instance is not None:
        host, _, port = hint.instance.rpartition(":")
        assert not set(host.strip("[]")) & set("/@?#|% \t\r\n\\")
        assert port.isdigit() and 1 <= int(port) <= 65535


@pytest.mark.parametrize(
    "text",
    [
        "127.0.0.1:7011/internal/admin?x=|",
        "127.0.0.1:@127.0.0.2/x?|",
        "127.0.0.1:@127.0.0.2|",
        "user@127.0.0.1:80|",
        "127.0.0.1:0|",
        "127.0.0.1:65536|",
        "127.0.0.1:080|",
        "127.0.0.1|",
        ":80|",
        "999.1.1.1:80|",
        "1.2.3:80|",
        "[127.0.0.1]:80|",
        "[::1%eth0]:80|",
        "a..b:80|",
        "-a.b:80|",
        "a_b:80|",
        "exämple.com:80|",
        "h:80|-1",
        "h:80|01",
        f"h:80|{MAX_WORKERS}",
        "h:80|1|2",
        "h:80",
        "|",
        "",
        "h:80| 1",
        "h:80\n|1",
        None,
        42,
        ["h:80|1"],
    ],
)
def test_refused(text):
    with pytest.raises(ValueError):
        parse_hint(text)


@pytest.mark.parametrize("text", ["10.0.0.5:5006|", "|0", "|3", "node-1.internal:5006|2", "[::1]:5006|"])
def test_accepted(text):
    assert format_hint(parse_hint(text)) == text


@given(instances)
def test_instances_are_host_port(instance):
    assert parse_instance(instance) == instance
    host = instance.rpartition(":")[0]
    if host.startswith("["):
        assert ipaddress.ip_address(host[1:-1]).version == 6


@given(st.text(max_size=40), st.text(min_size=1, max_size=40), st.text(max_size=40))
def test_signature_binds_route_session_and_text(route, session_id, text):
    signature = sign_hint(KEY, route, session_id, text)
    assert verify_hint(KEY, route, session_id, text, signature)
    assert not verify_hint(b"other" * 8, route, session_id, text, signature)
    assert not verify_hint(KEY, route + "x", session_id, text, signature)
    assert not verify_hint(KEY, route, session_id + "x", text, signature)
    assert not verify_hint(KEY, route, session_id, text + "x", signature)


@pytest.mark.parametrize("signature", [None, 1, "", "x" * 43, b"bytes"])
def test_bad_signatures_never_raise(signature):
    assert not verify_hint(KEY, "/app", "sid", "|1", signature)
    assert not verify_hint(KEY, "/app", "sid", None, sign_hint(KEY, "/app", "sid", "|1"))

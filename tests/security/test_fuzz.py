"""Whatever a peer sends, decoding gives a result, `TokenError` or `False`, never another exception."""

from __future__ import annotations

import json
import zlib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from aperture.errors import TokenError
from aperture.security.origins import origin_allowed, websocket_origin_allowed
from aperture.security.session_ids import check_session_id_signature
from aperture.security.signing import b64url_encode, sign_text
from aperture.security.tokens import (
    VerifiedToken,
    check_token_signature,
    get_session_id,
    get_token_payload,
    verify_token,
)

# The closed set of reasons: fixed texts, so they can never echo what the peer sent.
REASONS = {
    "token signature is invalid",
    "session id signature is invalid",
    "session id is empty",
    "token has no session expiry",
    "token session expiry is not a number",
    "token has expired",
} | {
    f"token is malformed: {detail}"
    for detail in (
        "token is not base64",
        "token is not JSON",
        "token is not a JSON object",
        "no session id",
        "compressed payload is not a string",
        "compressed payload is not base64",
        "compressed payload is not zlib data",
        "compressed payload is too large",
        "compressed payload is truncated",
        "extra payload is not JSON",
        "extra payload is not a JSON object",
        "a bytes value is not base64",
    )
}
KEY = b"fuzz-key"
NOW = 1_700_000_000

# Any code point, lone surrogates included (JSON's "\ud800" escape decodes to one).
_chars = st.characters(exclude_categories=()) | st.sampled_from(["\ud800", "\udfff", ".", "="])
_text = st.text(_chars, max_size=30)


def _signed(base: str) -> str:
    try:
        return f"{base}.{sign_text(KEY, base)}"
    except UnicodeEncodeError:
        return base


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _text,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(_chars, max_size=6), inner, max_size=3)
    ),
    max_leaves=10,
)
_session_ids = st.one_of(_text.map(_signed), _text, _json)
_blobs = st.one_of(
    _json,
    _text,
    st.binary(max_size=40).map(b64url_encode),
    st.binary(max_size=40).map(lambda data: b64url_encode(zlib.compress(data))),
    _json.map(lambda value: b64url_encode(zlib.compress(json.dumps(value).encode()))),
    _text.map(lambda text: b64url_encode(zlib.compress(text.encode("utf-8", "surrogatepass")))),
)


@st.composite
def _bodies(draw: st.DrawFn) -> str:
    body: dict[str, Any] = {}
    # mostly well-formed, so that the later checks are reached too
    if draw(st.integers(0, 4)) > 0:
        body["session_id"] = draw(_session_ids)
    if draw(st.integers(0, 4)) > 0:
        body["session_expiry"] = draw(st.one_of(st.integers(NOW - 5, NOW + 5), _json))
    if draw(st.booleans()):
        body["__bk__zlib_"] = draw(_blobs)
    base = b64url_encode(json.dumps(body).encode())
    ending = draw(st.sampled_from([".sign", "", ".", ".sig", ".x.y"]))
    return f"{base}.{sign_text(KEY, base)}" if ending == ".sign" else base + ending


_tokens = st.one_of(
    st.text(_chars),
    st.text(alphabet="eyJ0123456789abcdefABCDEF-_.=+/ !é"),
    st.binary().map(b64url_encode),
    _json.map(lambda value: b64url_encode(json.dumps(value).encode())),
    _bodies(),
)


def _decode_all(token: str) -> None:
    for decode in (get_session_id, get_token_payload):
        try:
            decode(token)
        except TokenError as exc:
            assert exc.reason in REASONS
    for secret, signed in ((KEY, True), (None, False), (KEY, False)):
        assert check_token_signature(token, secret, signed) in (True, False)
        try:
            verified = verify_token(token, secret=secret, signed=signed, now=NOW)
        except TokenError as exc:
            assert exc.reason in REASONS
            continue
        assert isinstance(verified, VerifiedToken) and verified.expiry > NOW and verified.session_id


@settings(max_examples=1500, deadline=None)
@given(token=_tokens)
def test_decoding_never_raises_anything_else(token: str) -> None:
    _decode_all(token)


@settings(max_examples=300, deadline=None)
@given(session_id=_text, secret=st.none() | st.binary(max_size=16), signed=st.booleans())
def test_session_id_check_never_raises(session_id: str, secret: bytes | None, signed: bool) -> None:
    assert check_session_id_signature(session_id, secret, signed) in (True, False)


_header = st.none() | _text | st.sampled_from(["same-origin", "none", "cross-site", "null"])


@settings(max_examples=500, deadline=None)
@given(origin=_header, host=_header, sec_fetch_site=_header, allowlist=st.lists(_text, max_size=3))
def test_origin_checks_never_raise(
    origin: str | None, host: str | None, sec_fetch_site: str | None, allowlist: list[str]
) -> None:
    decision = websocket_origin_allowed(
        origin=origin, host=host, sec_fetch_site=sec_fetch_site, allowlist=allowlist
    )
    assert decision in (True, False)
    assert origin_allowed(origin or "", allowlist) in (True, False)

"""Round trips against the real `bokeh.util.token`: each side accepts and decodes the other's output.

Bokeh reads its own clock, so byte identity is shown by reading the expiry out of Bokeh's token and
minting ours with `now = expiry - expiration`.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from bokeh.core.types import ID
from bokeh.util import token as bk
from hypothesis import given, settings
from hypothesis import strategies as st

from aperture.security.signing import b64url_decode, sign_text
from aperture.security.tokens import (
    check_session_id_signature,
    check_token_signature,
    generate_session_id,
    generate_token,
    get_session_id,
    get_token_payload,
    verify_token,
)

KEYS = [b"foo", "sécrèt-ünicode-key-☃-0123456789".encode(), b"HIRUvxfKXZB6mHpwT7L2pXz8mFQsEpZ4uSwQ6bBVvDKi"]

EXTRAS: list[dict[str, Any] | None] = [
    None,
    {},
    {"user": "alice"},
    {
        "headers": {"Host": "localhost:5006", "X-Name": "Jürgen", "X-Snow": "☃ \U0001f600"},
        "cookies": {"c1": "v1", "ünï": "çødé"},
        "arguments": {"foo": [b"bar"], "bin": [b"\x00\xff\xfe", b""], "bokeh-session-id": [b"abc"]},
    },
    {"numbers": [1, -2.5, 1e300, True, None], "deep": {"a": {"b": {"c": [b"x", {"y": b"z"}]}}}},
]

# JSON-able extra payloads that survive a round trip in Bokeh too: no `{"bytes": ...}`-only objects.
_keys = st.text(max_size=8).filter(lambda k: k != "bytes")
_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
_values = st.recursive(
    _leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=12,
)
_extras = st.dictionaries(_keys.filter(lambda k: k != "session_id"), _values, max_size=5)
_plain_text = st.text(st.characters(codec="utf-8", exclude_characters="."), max_size=30)


def _expiry_of(token: str) -> int:
    expiry: int = json.loads(b64url_decode(token.partition(".")[0]))["session_expiry"]
    return expiry


def _same_as_bokeh(session_id: str, secret: bytes | None, signed: bool, extra: Any, expiration: int) -> None:
    theirs = bk.generate_jwt_token(
        ID(session_id), secret_key=secret, signed=signed, extra_payload=extra, expiration=expiration
    )
    now = _expiry_of(theirs) - expiration
    ours = generate_token(
        session_id, secret=secret, signed=signed, extra=extra, expiration=expiration, now=now
    )
    assert ours == theirs
    expected = {"session_expiry": now + expiration, **(extra or {})}
    # Bokeh decodes ours, we decode Bokeh's (the same text, so this is one check each way).
    assert bk.get_session_id(ours) == get_session_id(theirs) == session_id
    assert bk.get_token_payload(ours) == get_token_payload(theirs) == expected
    assert bk.check_token_signature(ours, secret_key=secret, signed=signed) is True
    assert check_token_signature(theirs, secret, signed) is True
    assert verify_token(theirs, secret=secret, signed=signed, now=now).payload == expected


@pytest.mark.parametrize("extra", EXTRAS)
@pytest.mark.parametrize("key", KEYS)
def test_signed_tokens_match_bokeh(key: bytes, extra: dict[str, Any] | None) -> None:
    session_id = bk.generate_session_id(secret_key=key, signed=True)
    _same_as_bokeh(session_id, key, True, extra, 300)
    _same_as_bokeh(generate_session_id(key, signed=True), key, True, extra, 60)


@pytest.mark.parametrize("extra", EXTRAS)
@pytest.mark.parametrize("session_id", ["default", "☃ x", "a.b.c", "\U0001f600", "x" * 500])
def test_unsigned_tokens_match_bokeh(session_id: str, extra: dict[str, Any] | None) -> None:
    _same_as_bokeh(session_id, None, False, extra, 300)


@pytest.mark.parametrize("key", KEYS)
def test_session_ids_are_accepted_both_ways(key: bytes) -> None:
    for _ in range(5):
        theirs = bk.generate_session_id(secret_key=key, signed=True)
        ours = generate_session_id(key, signed=True)
        assert check_session_id_signature(theirs, key, signed=True)
        assert bk.check_session_id_signature(ours, secret_key=key, signed=True)
        assert not check_session_id_signature(theirs, key + b"!", signed=True)
        assert not bk.check_session_id_signature(ours, secret_key=key + b"!", signed=True)


def _bokeh_refuses(token: str, key: bytes) -> bool:
    try:
        return bk.check_token_signature(token, secret_key=key, signed=True) is False
    except ValueError:  # Bokeh raises where the session id cannot be decoded; we return False
        return True


@pytest.mark.parametrize("key", KEYS)
def test_tampered_tokens_are_refused_by_both(key: bytes) -> None:
    good = generate_token(generate_session_id(key, signed=True), secret=key, signed=True, extra={"a": b"b"})
    base, _, signature = good.partition(".")
    unsigned_id = generate_token("plain", secret=key, signed=True)
    for bad in [
        base,
        f"{base}.{signature[:-1]}",
        f"{base}.{signature}=",
        f"{base[:-2]}.{signature}",
        unsigned_id,
    ]:
        assert _bokeh_refuses(bad, key)
        assert check_token_signature(bad, key, signed=True) is False


@settings(max_examples=200, deadline=None)
@given(session_id=st.text(min_size=1, max_size=40), extra=_extras, expiration=st.integers(1, 10**6))
def test_random_unsigned_tokens_match_bokeh(session_id: str, extra: dict[str, Any], expiration: int) -> None:
    _same_as_bokeh(session_id, None, False, extra, expiration)


@settings(max_examples=200, deadline=None)
@given(base=_plain_text, key=st.binary(max_size=64), extra=_extras)
def test_random_signed_tokens_match_bokeh(base: str, key: bytes, extra: dict[str, Any]) -> None:
    session_id = f"{base}.{sign_text(key, base)}"
    assert bk.check_session_id_signature(session_id, secret_key=key, signed=True)
    _same_as_bokeh(session_id, key, True, extra, 300)

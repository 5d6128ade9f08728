"""The cheaper ways session ids and tokens are made, checked against the plain definitions.

Ids: CSPRNG bytes below 248 taken modulo 62 must give what a `secrets.choice` per symbol gives: 44 symbols of `ID_ALPHABET`, each position uniform (every symbol turns up at every
position) and independent of the others. Tokens: the deflated extra payload is kept per payload
text, so tokens must stay byte-identical to Bokeh's `generate_jwt_token` and to an uncached
deflate; `verify_token` decodes the token body once, with the same checks in the same order.
"""

from __future__ import annotations

import json
import zlib
from collections import Counter
from unittest import mock

import pytest
from bokeh.util import token as bokeh_token

from aperture.errors import TokenError
from aperture.security import session_ids, tokens
from aperture.security.signing import b64url_decode, b64url_encode

SECRET = b"a-secret-key-for-tests-of-at-least-32-bytes"


def test_ids_are_44_symbols_of_the_alphabet() -> None:
    for _ in range(200):
        value = session_ids.generate_session_id()
        assert len(value) == 44 and set(value) <= set(session_ids.ID_ALPHABET)
    assert len(session_ids.generate_secret_key()) == 44


def test_every_symbol_turns_up_at_every_position() -> None:
    # 3000 ids: a given symbol misses a given position with probability (61/62)**3000 < 1e-20.
    seen = [set() for _ in range(44)]
    for _ in range(3000):
        for position, symbol in enumerate(session_ids.generate_session_id()):
            seen[position].add(symbol)
    assert all(len(symbols) == 62 for symbols in seen)


def test_positions_are_uniform_and_independent() -> None:
    draws = [session_ids.generate_session_id() for _ in range(4000)]
    index = {symbol: i for i, symbol in enumerate(session_ids.ID_ALPHABET)}
    for position in (0, 21, 43):
        counts = Counter(d[position] for d in draws)
        # chi-square with 61 degrees of freedom; 120 is beyond its 99.999th percentile
        expected = len(draws) / 62
        assert sum((counts[s] - expected) ** 2 / expected for s in session_ids.ID_ALPHABET) < 120
    # neighbouring symbols: their difference mod 62 is uniform only if they are independent
    diffs = Counter((index[d[10]] - index[d[11]]) % 62 for d in draws)
    expected = len(draws) / 62
    assert sum((diffs[k] - expected) ** 2 / expected for k in range(62)) < 120


def test_ids_come_from_the_csprng() -> None:
    kept = bytes(range(44))  # bytes 0..43 are the symbols in alphabet order
    with mock.patch.object(session_ids.secrets, "token_bytes", return_value=kept + bytes(16)) as draw:
        assert session_ids.generate_session_id() == session_ids.ID_ALPHABET[:44]
    draw.assert_called_once_with(60)
    # bytes 248..255 would favour the first 8 symbols: they are dropped, and more bytes drawn
    high = bytes([255, 248, 61, 62, 247]) + bytes(range(248, 256)) * 7
    with mock.patch.object(session_ids.secrets, "token_bytes", side_effect=[high, bytes(60)]) as draw:
        assert session_ids.generate_session_id() == "9a9" + "a" * 41  # 61, 62 % 62, 247 % 62
    assert draw.call_count == 2


def test_signed_ids_still_verify() -> None:
    value = session_ids.generate_session_id(SECRET, signed=True)
    assert session_ids.check_session_id_signature(value, SECRET, signed=True)


EXTRAS = [
    {"arguments": {}},
    {"arguments": {"x": [b"1", b"2"]}, "user": "ann"},
    {"arguments": {}, "blob": b"\x00\xff"},
    {"nested": {"list": [1, 2.5, None, True, "ü"]}},
    {"big": "x" * 5000, "more": list(range(300))},  # too big to be kept: deflated every time
]


@pytest.mark.parametrize("extra", EXTRAS)
@pytest.mark.parametrize("signed", [False, True])
def test_tokens_match_bokeh_and_an_uncached_deflate(extra: dict, signed: bool) -> None:
    sid = session_ids.generate_session_id(SECRET, signed=signed)
    now = 1_800_000_000
    for _ in range(3):  # first deflate, then kept ones
        mine = tokens.generate_token(sid, secret=SECRET, signed=signed, extra=extra, now=now)
        with mock.patch("bokeh.util.token.calendar.timegm", return_value=now):
            theirs = bokeh_token.generate_jwt_token(
                sid, secret_key=SECRET, signed=signed, extra_payload=extra, expiration=300
            )
        assert mine == theirs
        body = json.loads(b64url_decode(mine.partition(".")[0]))
        text = json.dumps(dict(extra), default=lambda v: {"bytes": b64url_encode(v)})
        assert body["__bk__zlib_"] == b64url_encode(zlib.compress(text.encode("utf-8"), 9))


def test_token_checks_keep_their_order() -> None:
    sid = session_ids.generate_session_id(SECRET, signed=True)
    good = tokens.generate_token(sid, secret=SECRET, signed=True, extra={"arguments": {}})
    verified = tokens.verify_token(good, secret=SECRET, signed=True)
    assert verified.session_id == sid and verified.payload == {
        "session_expiry": verified.expiry,
        "arguments": {},
    }
    # an unsigned id inside a validly signed token: refused before the payload is inflated
    bad_id = tokens.generate_token("plainid", secret=SECRET, signed=True, extra={"arguments": {}})
    with mock.patch("aperture.security.token_payload._inflate") as inflate:
        with pytest.raises(TokenError, match="session id signature is invalid"):
            tokens.verify_token(bad_id, secret=SECRET, signed=True)
    inflate.assert_not_called()
    empty = tokens.generate_token("", extra={"arguments": {}})
    with pytest.raises(TokenError, match="session id is empty"):
        tokens.verify_token(empty, secret=None, signed=False)
    expired = tokens.generate_token("abc", extra={"arguments": {}}, now=1000)
    with pytest.raises(TokenError, match="token has expired"):
        tokens.verify_token(expired, secret=None, signed=False)
    broken = b64url_encode(
        json.dumps({"session_id": "abc", "session_expiry": 2**40, "__bk__zlib_": "!!"}).encode()
    )
    with pytest.raises(TokenError, match="token is malformed"):
        tokens.verify_token(broken, secret=None, signed=False)

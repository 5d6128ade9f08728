"""Minting, decoding and verifying ids and tokens: formats, every rejection and its reason."""

from __future__ import annotations

import base64
import json
import time
import zlib

import pytest

from aperture.errors import CLOSE_POLICY_VIOLATION, TokenError
from aperture.security.signing import b64url_decode, b64url_encode, sign_text
from aperture.security.tokens import (
    ID_ALPHABET,
    MAX_PAYLOAD_BYTES,
    VerifiedToken,
    check_session_id_signature,
    check_token_signature,
    generate_secret_key,
    generate_session_id,
    generate_token,
    get_session_id,
    get_token_payload,
    verify_token,
)

NOW = 1_700_000_000
KEY = b"HIRUvxfKXZB6mHpwT7L2pXz8mFQsEpZ4uSwQ6bBVvDKi"
SIGNED_ID = "abc.b6FFHCLEtAVaXGeQj8UzZ90_BXIjYvkMpDx8SWTvr6w"  # "abc" signed with KEY


def _b64json(value: object) -> str:
    return b64url_encode(json.dumps(value).encode())


def _zlib(data: bytes) -> str:
    return b64url_encode(zlib.compress(data, 9))


def _sign(base: str) -> str:
    return f"{base}.{sign_text(KEY, base)}"


# --- secrets and session ids ---------------------------------------------------------------------


def test_id_alphabet() -> None:
    assert ID_ALPHABET == "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def test_generate_secret_key() -> None:
    keys = {generate_secret_key() for _ in range(50)}
    assert len(keys) == 50
    assert all(len(k) == 44 and set(k) <= set(ID_ALPHABET) for k in keys)


def test_generate_unsigned_session_id() -> None:
    ids = {generate_session_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(len(i) == 44 and set(i) <= set(ID_ALPHABET) for i in ids)
    assert len(generate_session_id(KEY, signed=False)) == 44


def test_generate_signed_session_id() -> None:
    session_id = generate_session_id(KEY, signed=True)
    base, dot, signature = session_id.partition(".")
    assert (len(session_id), len(base), dot, len(signature)) == (88, 44, ".", 43)
    assert signature == sign_text(KEY, base)
    assert check_session_id_signature(session_id, KEY, signed=True)


def test_signing_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="secret key"):
        generate_session_id(None, signed=True)
    with pytest.raises(ValueError, match="secret key"):
        generate_token("abc", signed=True)
    with pytest.raises(ValueError, match="secret key"):
        verify_token(_sign("x"), secret=None, signed=True)


@pytest.mark.parametrize(
    "session_id",
    [
        "",
        "abc",
        "abc.",
        ".sig",
        "abc.b6FFHCLEtAVaXGeQj8UzZ90_BXIjYvkMpDx8SWTvr6w=",
        "abc.x.y",
        "é.☃",
        "\ud800.x",
    ],
)
def test_bad_signed_session_ids_are_refused(session_id: str) -> None:
    assert check_session_id_signature(session_id, KEY, signed=True) is False
    assert check_session_id_signature(session_id, KEY, signed=False) is True
    assert check_session_id_signature(SIGNED_ID, None, signed=True) is False


def test_session_id_base_may_contain_anything_and_split_is_at_first_dot() -> None:
    base = "☃ x"
    assert check_session_id_signature(f"{base}.{sign_text(KEY, base)}", KEY, signed=True)
    # the signature part must match exactly; a second dot belongs to the signature
    assert not check_session_id_signature(f"a.{sign_text(KEY, 'a.b')}", KEY, signed=True)


# --- generating tokens ---------------------------------------------------------------------------


def test_unsigned_token_shape() -> None:
    token = generate_token(generate_session_id())
    assert len(token) == 123 and "." not in token
    assert set(token) <= set(ID_ALPHABET + "-_")


def test_signed_token_has_one_dot() -> None:
    token = generate_token(generate_session_id(KEY, signed=True), secret=KEY, signed=True)
    assert token.count(".") == 1
    assert check_token_signature(token, KEY, signed=True)


def test_secret_without_signing_is_unused() -> None:
    assert generate_token("abc", secret=KEY, now=NOW) == generate_token("abc", now=NOW)


def test_default_clock_is_utc_seconds() -> None:
    before = int(time.time())
    expiry = verify_token(generate_token("abc", expiration=10), secret=None, signed=False).expiry
    assert before + 10 <= expiry <= int(time.time()) + 10


def test_empty_extra_adds_nothing() -> None:
    assert generate_token("abc", extra={}, now=NOW) == generate_token("abc", now=NOW)


def test_extra_may_not_carry_session_id() -> None:
    with pytest.raises(ValueError, match="session_id"):
        generate_token("abc", extra={"session_id": "other"}, now=NOW)


def test_extra_must_be_json() -> None:
    with pytest.raises(TypeError, match="bytearray"):
        generate_token("abc", extra={"x": bytearray(b"1")}, now=NOW)


def test_extra_round_trip_with_bytes_and_unicode() -> None:
    extra = {"arguments": {"q": [b"\x00\xff", b""]}, "name": "Jürgen ☃", "nested": {"bytes": b"x"}}
    payload = get_token_payload(generate_token("☃", extra=extra, now=NOW))
    assert payload == {"session_expiry": NOW + 300, **extra}


def test_inner_payload_overrides_outer_members() -> None:
    token = generate_token("abc", extra={"session_expiry": 5}, now=NOW)
    assert get_token_payload(token) == {"session_expiry": 5}
    with pytest.raises(TokenError, match="^token has expired$"):
        verify_token(token, secret=None, signed=False, now=NOW)


# --- decoding ------------------------------------------------------------------------------------

BODY = {"session_id": "abc", "session_expiry": NOW + 300}

MALFORMED: list[tuple[str, str]] = [
    ("", "token is not JSON"),
    ("!!!!", "token is not base64"),
    ("é", "token is not base64"),
    ("a", "token is not base64"),
    ("ab=c", "token is not base64"),
    (b64url_encode(b"nope"), "token is not JSON"),
    (b64url_encode(b"\xff\xfe\x00"), "token is not JSON"),
    (b64url_encode(b"[" * 100_000), "token is not JSON"),
    (_b64json([1, 2]), "token is not a JSON object"),
    (_b64json({"x": 1}), "no session id"),
    (_b64json({"session_id": 5}), "no session id"),
    (_b64json({"session_id": None}), "no session id"),
]

MALFORMED_PAYLOAD: list[tuple[object, str]] = [
    (5, "compressed payload is not a string"),
    ("!!", "compressed payload is not base64"),
    (b64url_encode(b"not zlib"), "compressed payload is not zlib data"),
    (_zlib(b'{"a": 1}')[:-6], "compressed payload is truncated"),
    (_zlib(b" " * (MAX_PAYLOAD_BYTES + 1)), "compressed payload is too large"),
    (_zlib(b"\x00" * (64 * MAX_PAYLOAD_BYTES)), "compressed payload is too large"),
    (_zlib(b"{"), "extra payload is not JSON"),
    (_zlib(b"\xff"), "extra payload is not JSON"),
    (_zlib(b'"text"'), "extra payload is not a JSON object"),
    (_zlib(b"[1]"), "extra payload is not a JSON object"),
    (_zlib(b'{"a": {"bytes": "!"}}'), "a bytes value is not base64"),
    (_zlib(b"[" * 100_000), "extra payload is not JSON"),
]


@pytest.mark.parametrize(("token", "detail"), MALFORMED)
def test_malformed_token(token: str, detail: str) -> None:
    for decode in (get_session_id, get_token_payload):
        with pytest.raises(TokenError) as caught:
            decode(token)
        assert caught.value.reason == f"token is malformed: {detail}"
        assert caught.value.close_code == CLOSE_POLICY_VIOLATION
    with pytest.raises(TokenError, match=f"^token is malformed: {detail}$"):
        verify_token(token, secret=None, signed=False, now=NOW)
    assert check_token_signature(token, KEY, signed=True) is False
    assert check_token_signature(f"{token}.sig", KEY, signed=True) is False


@pytest.mark.parametrize(("blob", "detail"), MALFORMED_PAYLOAD)
def test_malformed_payload(blob: object, detail: str) -> None:
    token = _b64json({**BODY, "__bk__zlib_": blob})
    assert get_session_id(token) == "abc"  # the id does not need the payload
    with pytest.raises(TokenError, match=f"^token is malformed: {detail}$"):
        get_token_payload(token)
    with pytest.raises(TokenError, match=f"^token is malformed: {detail}$"):
        verify_token(token, secret=None, signed=False, now=NOW)


def test_payload_of_exactly_the_cap_is_accepted() -> None:
    filler = "x" * (MAX_PAYLOAD_BYTES - len('{"f": ""}'))
    token = _b64json({**BODY, "__bk__zlib_": _zlib(json.dumps({"f": filler}).encode())})
    assert len(get_token_payload(token)["f"]) == len(filler)


def test_bytes_objects_are_only_objects_with_a_single_string_bytes_member() -> None:
    inner = {"a": {"bytes": "YQ"}, "b": {"bytes": "YQ", "x": 1}, "c": {"bytes": 1}, "d": [{"bytes": ""}]}
    token = _b64json({**BODY, "__bk__zlib_": _zlib(json.dumps(inner).encode())})
    assert get_token_payload(token) == {
        "session_expiry": NOW + 300,
        "a": b"a",
        "b": {"bytes": "YQ", "x": 1},
        "c": {"bytes": 1},
        "d": [b""],
    }


def test_outer_members_are_kept_and_session_id_dropped_even_from_inner() -> None:
    inner = json.dumps({"session_id": "inner", "k": "v"}).encode()
    token = _b64json({"session_id": "abc", "other": 1, "__bk__zlib_": _zlib(inner)})
    assert get_session_id(token) == "abc"
    assert get_token_payload(token) == {"other": 1, "k": "v"}


def test_trailing_bytes_after_the_zlib_stream_are_ignored() -> None:
    blob = b64url_encode(zlib.compress(b'{"k": 1}', 9) + b"junk")
    assert get_token_payload(_b64json({**BODY, "__bk__zlib_": blob}))["k"] == 1


def test_padding_and_standard_alphabet_are_accepted() -> None:
    raw = json.dumps({**BODY, "x": "??>>"}).encode()
    standard = base64.b64encode(raw).decode()
    assert "+" in standard or "/" in standard
    assert get_session_id(standard) == "abc"
    padded = base64.urlsafe_b64encode(raw).decode()
    assert get_session_id(padded) == get_session_id(padded.rstrip("=")) == "abc"
    assert b64url_decode(b64url_encode(raw)) == raw


def test_the_token_text_after_the_first_dot_is_ignored_by_decoding() -> None:
    token = _b64json(BODY)
    assert get_session_id(f"{token}.x.y") == "abc"
    assert get_token_payload(f"{token}.") == {"session_expiry": NOW + 300}


# --- verify_token --------------------------------------------------------------------------------


def _verify(token: str, *, signed: bool = True, now: int = NOW) -> VerifiedToken:
    return verify_token(token, secret=KEY if signed else None, signed=signed, now=now)


def test_verify_signed_token() -> None:
    token = generate_token(SIGNED_ID, secret=KEY, signed=True, extra={"user": "alice"}, now=NOW)
    assert _verify(token) == VerifiedToken(
        SIGNED_ID, {"session_expiry": NOW + 300, "user": "alice"}, NOW + 300
    )


def test_unsigned_server_ignores_signatures() -> None:
    token = generate_token(SIGNED_ID, secret=b"some other key", signed=True, now=NOW)
    assert _verify(token, signed=False).session_id == SIGNED_ID
    assert _verify(token + "garbage", signed=False).session_id == SIGNED_ID


REJECTIONS: list[tuple[str, bool, str]] = [
    # (token, signed, reason)
    (generate_token(SIGNED_ID, now=NOW), True, "token signature is invalid"),
    (generate_token(SIGNED_ID, secret=KEY, signed=True, now=NOW) + "x", True, "token signature is invalid"),
    (generate_token(SIGNED_ID, secret=b"k", signed=True, now=NOW), True, "token signature is invalid"),
    (_sign(_b64json(BODY)), True, "session id signature is invalid"),
    (_sign(_b64json({**BODY, "session_id": ""})), True, "session id signature is invalid"),
    (_sign("junk"), True, "token is malformed: token is not JSON"),
    (_sign(_b64json({"session_id": SIGNED_ID})), True, "token has no session expiry"),
    (
        _sign(_b64json({"session_id": SIGNED_ID, "session_expiry": "9999999999"})),
        True,
        "token session expiry is not a number",
    ),
    (generate_token(SIGNED_ID, secret=KEY, signed=True, now=NOW - 300), True, "token has expired"),
    (generate_token(SIGNED_ID, secret=KEY, signed=True, now=NOW, expiration=-1), True, "token has expired"),
    (generate_token("", now=NOW), False, "session id is empty"),
    (_b64json({"session_id": "abc"}), False, "token has no session expiry"),
    (_b64json({"session_id": "abc", "session_expiry": None}), False, "token session expiry is not a number"),
    (_b64json({"session_id": "abc", "session_expiry": True}), False, "token session expiry is not a number"),
    (_b64json({"session_id": "abc", "session_expiry": [1]}), False, "token session expiry is not a number"),
    (
        _b64json({"session_id": "abc", "session_expiry": float("nan")}),
        False,
        "token session expiry is not a number",
    ),
    (
        _b64json({"session_id": "abc", "session_expiry": float("inf")}),
        False,
        "token session expiry is not a number",
    ),
    (_b64json({"session_id": "abc", "session_expiry": NOW}), False, "token has expired"),
    (_b64json({"session_id": "abc", "session_expiry": NOW - 0.5}), False, "token has expired"),
]


@pytest.mark.parametrize(("token", "signed", "reason"), REJECTIONS)
def test_verify_token_rejections(token: str, signed: bool, reason: str) -> None:
    with pytest.raises(TokenError) as caught:
        _verify(token, signed=signed)
    assert caught.value.reason == reason
    assert str(caught.value) == reason
    assert caught.value.close_code == CLOSE_POLICY_VIOLATION
    assert token not in reason and token.partition(".")[0] not in reason


def test_fractional_expiry_is_compared_like_bokeh() -> None:
    token = _b64json({"session_id": "abc", "session_expiry": NOW + 0.5})
    assert _verify(token, signed=False).expiry == NOW + 1
    with pytest.raises(TokenError, match="^token has expired$"):
        _verify(token, signed=False, now=NOW + 1)


def test_expiry_boundary() -> None:
    token = generate_token(SIGNED_ID, secret=KEY, signed=True, expiration=1, now=NOW)
    assert _verify(token, now=NOW).expiry == NOW + 1
    with pytest.raises(TokenError, match="^token has expired$"):
        _verify(token, now=NOW + 1)


def test_signature_is_checked_before_the_payload_is_inflated() -> None:
    bomb = _b64json({"session_id": SIGNED_ID, "session_expiry": NOW + 9, "__bk__zlib_": "!"})
    with pytest.raises(TokenError, match="^token signature is invalid$"):
        _verify(bomb + ".forged")
    with pytest.raises(TokenError, match="^token is malformed: compressed payload is not base64$"):
        _verify(_sign(bomb))


def test_verified_token_is_frozen() -> None:
    verified = _verify(generate_token(SIGNED_ID, secret=KEY, signed=True, now=NOW))
    assert isinstance(verified.payload, dict)
    with pytest.raises(AttributeError):
        verified.session_id = "x"  # type: ignore[misc]

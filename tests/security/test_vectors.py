"""Every vector of `token_vectors.json` (Bokeh 3.9.2, clock pinned), reproduced byte for byte."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from aperture.errors import TokenError
from aperture.security.signing import b64url_decode
from aperture.security.tokens import (
    check_session_id_signature,
    check_token_signature,
    generate_token,
    get_session_id,
    get_token_payload,
    sign_text,
    verify_token,
)

VECTORS: dict[str, Any] = json.loads((Path(__file__).parent / "token_vectors.json").read_text("utf-8"))
K2 = b"HIRUvxfKXZB6mHpwT7L2pXz8mFQsEpZ4uSwQ6bBVvDKi"


def _secret(vector: dict[str, Any]) -> bytes | None:
    return None if vector["secret"] is None else vector["secret"].encode("utf-8")


def _extra(vector: dict[str, Any]) -> dict[str, Any] | None:
    # Rebuild the Python extra payload from its JSON text, independently of the code under test.
    def hook(obj: dict[str, Any]) -> Any:
        if list(obj) == ["bytes"]:
            return base64.urlsafe_b64decode(obj["bytes"] + "=" * (-len(obj["bytes"]) % 4))
        return obj

    text = vector.get("extra_payload_json")
    return None if text is None else json.loads(text, object_hook=hook)


def _by_name(group: str) -> list[Any]:
    return [pytest.param(v, id=v.get("name", v.get("base_id"))) for v in VECTORS[group]]


def test_vectors_come_from_the_reference_release() -> None:
    assert VECTORS["bokeh_version"] == "3.9.2"
    assert len(VECTORS["session_ids"]) == 6
    assert len(VECTORS["tokens"]) == 7
    assert len(VECTORS["negative"]) == 5


@pytest.mark.parametrize("vector", _by_name("session_ids"))
def test_signed_session_id(vector: dict[str, Any]) -> None:
    secret = vector["secret"].encode("utf-8")
    base, _, signature = vector["signed_id"].partition(".")
    assert base == vector["base_id"]
    assert sign_text(secret, base) == signature
    assert len(signature) == 43
    assert b64url_decode(signature).hex() == vector["hmac_sha256_hex"]
    assert check_session_id_signature(vector["signed_id"], secret, signed=True)
    assert check_session_id_signature(vector["signed_id"], None, signed=False)
    assert not check_session_id_signature(vector["base_id"], secret, signed=True)
    assert not check_session_id_signature(vector["signed_id"] + "x", secret, signed=True)
    assert not check_session_id_signature(vector["signed_id"], b"other key", signed=True)


@pytest.mark.parametrize("vector", _by_name("tokens"))
def test_generate_token_is_byte_identical(vector: dict[str, Any]) -> None:
    token = generate_token(
        vector["session_id"],
        secret=_secret(vector),
        signed=vector["signed"],
        expiration=vector["expiration"],
        extra=_extra(vector),
        now=vector["now"],
    )
    assert token == vector["token"]


@pytest.mark.parametrize("vector", _by_name("tokens"))
def test_token_body_is_the_reference_json(vector: dict[str, Any]) -> None:
    base = vector["token"].partition(".")[0]
    assert b64url_decode(base).decode("ascii") == vector["outer_json"]
    assert ("." in vector["token"]) == vector["signed"]


@pytest.mark.parametrize("vector", _by_name("tokens"))
def test_decode_token(vector: dict[str, Any]) -> None:
    token = vector["token"]
    assert check_token_signature(token, _secret(vector), vector["signed"]) is vector["check_token_signature"]
    assert get_session_id(token) == vector["get_session_id"]
    # repr pins the key order and the bytes values too
    assert repr(get_token_payload(token)) == vector["get_token_payload"]
    if "check_session_id_signature" in vector:
        sid = vector["get_session_id"]
        ok = check_session_id_signature(sid, _secret(vector), vector["signed"])
        assert ok is vector["check_session_id_signature"]


@pytest.mark.parametrize("vector", _by_name("tokens"))
def test_verify_token_accepts_until_expiry(vector: dict[str, Any]) -> None:
    expiry = vector["now"] + vector["expiration"]
    kwargs: dict[str, Any] = {"secret": _secret(vector), "signed": vector["signed"]}
    verified = verify_token(vector["token"], now=vector["now"], **kwargs)
    assert verified.session_id == vector["session_id"]
    assert verified.expiry == expiry
    assert repr(verified.payload) == vector["get_token_payload"]
    assert verify_token(vector["token"], now=expiry - 1, **kwargs).expiry == expiry
    with pytest.raises(TokenError, match="^token has expired$"):
        verify_token(vector["token"], now=expiry, **kwargs)


@pytest.mark.parametrize("vector", _by_name("tokens"))
def test_signed_vectors_fail_under_another_key(vector: dict[str, Any]) -> None:
    if not vector["signed"]:
        assert not check_token_signature(vector["token"], K2, signed=True)
        return
    assert not check_token_signature(vector["token"], b"another key", signed=True)
    with pytest.raises(TokenError, match="^token signature is invalid$"):
        verify_token(vector["token"], secret=b"another key", signed=True, now=vector["now"])


@pytest.mark.parametrize("vector", _by_name("negative"))
def test_negative_vector(vector: dict[str, Any]) -> None:
    secret = vector["secret"].encode("utf-8")
    assert check_token_signature(vector["token"], secret, signed=True) is False
    with pytest.raises(TokenError) as caught:
        verify_token(vector["token"], secret=secret, signed=True, now=1_700_000_000)
    assert caught.value.reason in ("token signature is invalid", "session id signature is invalid")
    # unsigned servers check nothing here
    assert check_token_signature(vector["token"], None, signed=False) is True


@pytest.mark.parametrize("token", ["", "foo-bar-baz", "junk.sig", VECTORS["tokens"][0]["token"]])
def test_spec_negative_cases(token: str) -> None:
    # `junk.sig` makes Bokeh raise; ours is a plain False.
    assert check_token_signature(token, K2, signed=True) is False


def test_unsigned_session_id_in_validly_signed_token_is_named() -> None:
    vector = next(v for v in VECTORS["negative"] if "unsigned session_id" in v["name"])
    with pytest.raises(TokenError, match="^session id signature is invalid$"):
        verify_token(vector["token"], secret=K2, signed=True, now=1_700_000_000)
    assert vector["token"] == generate_token("unsigned-session", secret=K2, signed=True, now=1_700_000_000)


def test_default_token_of_bokehjs() -> None:
    assert get_session_id("eyJzZXNzaW9uX2lkIjogImRlZmF1bHQifQ") == "default"
    with pytest.raises(TokenError, match="^token has no session expiry$"):
        verify_token("eyJzZXNzaW9uX2lkIjogImRlZmF1bHQifQ", secret=None, signed=False, now=0)

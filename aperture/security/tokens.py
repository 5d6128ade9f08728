"""Session tokens: minting, signature checks and the websocket-open verification.

Theory of operation: a token is `b64url(json({"session_id", "session_expiry"[, "__bk__zlib_"]}))`,
followed in signed mode by `.` and `sign_text(secret, <that base64 text>)`; the optional
`__bk__zlib_` member carries the extra payload as `b64url(zlib(json(extra)))`, with `bytes` values
written as `{"bytes": b64url}`. `generate_token` is byte-identical to Bokeh 3.9's
`generate_jwt_token` given the same clock. Signed tokens are authenticated in two places: the HMAC
over the base64 text, and the session id inside, which must itself be a signed id. Parsing lives in
`token_payload`; here every check happens before a payload is decompressed. `check_token_signature`
never raises; `verify_token` raises `TokenError` with a short reason that never quotes the token.
Expiry is whole UTC seconds and takes an injectable `now`.
"""

from __future__ import annotations

import json
import math
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from aperture.errors import TokenError
from aperture.security.session_ids import (
    ID_ALPHABET,
    check_session_id_signature,
    generate_secret_key,
    generate_session_id,
)
from aperture.security.signing import b64url_encode, sign_text, signature_matches
from aperture.security.token_payload import (
    MAX_PAYLOAD_BYTES,
    ZLIB_KEY,
    get_session_id,
    get_token_payload,
    payload_of,
    token_body,
)

__all__ = [
    "DEFAULT_EXPIRATION",
    "ID_ALPHABET",
    "MAX_PAYLOAD_BYTES",
    "VerifiedToken",
    "check_session_id_signature",
    "check_token_signature",
    "generate_secret_key",
    "generate_session_id",
    "generate_token",
    "get_session_id",
    "get_token_payload",
    "sign_text",
    "utc_now",
    "verify_token",
]

DEFAULT_EXPIRATION = 300
"""Seconds a token stays valid for opening a websocket (`--session-token-expiration`)."""


def utc_now() -> int:
    """Current UTC time in whole epoch seconds, truncated like Bokeh's `calendar.timegm`."""
    return int(time.time())


def _encode_bytes(value: object) -> object:
    if isinstance(value, bytes):
        return {"bytes": b64url_encode(value)}
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def generate_token(
    session_id: str,
    *,
    secret: bytes | None = None,
    signed: bool = False,
    expiration: int = DEFAULT_EXPIRATION,
    extra: Mapping[str, Any] | None = None,
    now: int | None = None,
) -> str:
    """A token for `session_id` expiring `expiration` seconds after `now` (default: the clock).

    Raises `ValueError` if `signed` without a secret or if `extra` has a `session_id` key, and
    `TypeError` if `extra` holds something JSON cannot encode (other than `bytes`).
    """
    if signed and secret is None:
        raise ValueError("a secret key is required to sign tokens")
    issued = utc_now() if now is None else now
    body: dict[str, Any] = {"session_id": session_id, "session_expiry": issued + expiration}
    if extra:
        if "session_id" in extra:
            raise ValueError("extra payload must not contain 'session_id'")
        extra_json = json.dumps(dict(extra), default=_encode_bytes)
        body[ZLIB_KEY] = _compressed(extra_json) if len(extra_json) <= 4096 else _deflate(extra_json)
    token = b64url_encode(json.dumps(body).encode("utf-8"))
    if secret is None or not signed:
        return token
    return f"{token}.{sign_text(secret, token)}"


def _deflate(extra_json: str) -> str:
    return b64url_encode(zlib.compress(extra_json.encode("utf-8"), 9))


# Most pages of an app carry the same small extra payload (their query arguments and
# `process_request` output): a level-9 deflate of it cost more than the rest of the token.
_compressed = lru_cache(maxsize=64)(_deflate)


def check_token_signature(token: str, secret: bytes | None, signed: bool) -> bool:
    """Bokeh's check: HMAC of the token and signature of the id inside. Never raises.

    Unsigned mode accepts everything (decoding fails later). Signed mode needs a secret, exactly one
    split at the first `.`, a matching HMAC and a validly signed embedded session id.
    """
    if not signed:
        return True
    if secret is None:
        return False
    base, dot, signature = token.partition(".")
    if not dot:
        return False
    token_ok = signature_matches(secret, base, signature)
    try:
        session_id = get_session_id(base)
    except TokenError:
        return False
    id_ok = check_session_id_signature(session_id, secret, signed=True)
    return token_ok and id_ok


@dataclass(frozen=True)
class VerifiedToken:
    """A token that passed `verify_token`: its session id, decoded payload and expiry.

    `expired` is set by a caller that accepted the token past its expiry (to resume a session).
    """

    session_id: str
    payload: dict[str, Any]
    expiry: int
    expired: bool = False


def _expiry(payload: Mapping[str, Any]) -> int:
    if "session_expiry" not in payload:
        raise TokenError("token has no session expiry")
    value = payload["session_expiry"]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenError("token session expiry is not a number")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TokenError("token session expiry is not a number")
        # For whole-second `now`, `now >= ceil(x)` exactly when `now >= x`, as Bokeh compares.
        return math.ceil(value)
    return value


def verify_token(token: str, *, secret: bytes | None, signed: bool, now: int | None = None) -> VerifiedToken:
    """Everything a websocket open checks; raises `TokenError` on the first failure.

    In signed mode the token's HMAC is checked before anything is decoded, then the embedded id's
    signature, before the payload is decompressed. Then: a non-empty session id, a numeric
    `session_expiry` (a float is rounded up), and `now < expiry`. `ValueError` if `signed` and no
    secret, which is the server's mistake, not the peer's.
    """
    if signed:
        if secret is None:
            raise ValueError("a secret key is required to verify signed tokens")
        base, dot, signature = token.partition(".")
        if not dot or not signature_matches(secret, base, signature):
            raise TokenError("token signature is invalid")
    body = token_body(token)  # decoded once; the extra payload is inflated after the id checks
    session_id: str = body["session_id"]
    if not check_session_id_signature(session_id, secret, signed):
        raise TokenError("session id signature is invalid")
    if not session_id:
        raise TokenError("session id is empty")
    payload = payload_of(body)
    expiry = _expiry(payload)
    if (utc_now() if now is None else now) >= expiry:
        raise TokenError("token has expired")
    return VerifiedToken(session_id=session_id, payload=payload, expiry=expiry)

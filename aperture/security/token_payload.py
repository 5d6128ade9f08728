"""Decoding a session token's body: its session id and its payload, defensively.

Everything a peer sends is untrusted, so any malformed token raises `TokenError` whose reason starts
with `token is malformed:` and never quotes the token; no other exception escapes. Decoding follows
`bokeh.util.token`: the text before the first `.` is base64 JSON; the payload is that object with
the `__bk__zlib_` member decompressed, merged *over* it (inner keys win) and `session_id` removed;
inside the compressed part every object whose only member is `"bytes": <str>` becomes `bytes`.
Stricter than Bokeh: the session id must be a string, the payload objects must be objects, and the
decompressed payload is capped at `MAX_PAYLOAD_BYTES` (a zlib bomb is refused, not inflated).
"""

from __future__ import annotations

import json
import zlib
from typing import Any, NoReturn

from aperture.errors import TokenError
from aperture.security.signing import b64url_decode

__all__ = ["MAX_PAYLOAD_BYTES", "ZLIB_KEY", "get_session_id", "get_token_payload", "payload_of", "token_body"]

ZLIB_KEY = "__bk__zlib_"
"""Member of the token JSON holding the compressed extra payload."""

MAX_PAYLOAD_BYTES = 1024 * 1024
"""Largest decompressed extra payload accepted (real page tokens carry about 1 KiB)."""


def _malformed(detail: str) -> NoReturn:
    # `from None`: the reason says it all; the decoder's own exception would only add noise to logs
    raise TokenError(f"token is malformed: {detail}") from None


def _unbase64(text: str, what: str) -> bytes:
    try:
        return b64url_decode(text)
    except ValueError:
        _malformed(f"{what} is not base64")


def _bytes_hook(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and isinstance(obj.get("bytes"), str):
        return _unbase64(obj["bytes"], "a bytes value")
    return obj


def _load_object(data: bytes | str, what: str, *, with_bytes: bool = False) -> dict[str, Any]:
    try:
        value = json.loads(data, object_hook=_bytes_hook if with_bytes else None)
    except (ValueError, RecursionError):  # bad JSON or encoding, huge ints, deep nesting
        _malformed(f"{what} is not JSON")
    if not isinstance(value, dict):
        _malformed(f"{what} is not a JSON object")
    return value


def token_body(token: str) -> dict[str, Any]:
    """The token's JSON object (the text before the first `.`), with a string `session_id`."""
    body = _load_object(_unbase64(token.partition(".")[0], "token"), "token")
    if not isinstance(body.get("session_id"), str):
        _malformed("no session id")
    return body


def _inflate(blob: object) -> bytes:
    if not isinstance(blob, str):
        _malformed("compressed payload is not a string")
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(_unbase64(blob, "compressed payload"), MAX_PAYLOAD_BYTES + 1)
    except zlib.error:
        _malformed("compressed payload is not zlib data")
    if len(data) > MAX_PAYLOAD_BYTES:
        _malformed("compressed payload is too large")
    if not inflater.eof:  # bytes after the end of the stream are ignored, as zlib.decompress does
        _malformed("compressed payload is truncated")
    return data


def get_session_id(token: str) -> str:
    """The session id inside `token` (signed or not); `TokenError` if the token is malformed."""
    session_id: str = token_body(token)["session_id"]
    return session_id


def get_token_payload(token: str) -> dict[str, Any]:
    """The token's payload: its members, extra payload merged over them, without `session_id`."""
    return payload_of(token_body(token))


def payload_of(body: dict[str, Any]) -> dict[str, Any]:
    """`get_token_payload` of the token whose `token_body` is `body` (which becomes the payload)."""
    if ZLIB_KEY in body:
        extra = _load_object(_inflate(body.pop(ZLIB_KEY)), "extra payload", with_bytes=True)
        body.update(extra)
    body.pop("session_id", None)
    return body

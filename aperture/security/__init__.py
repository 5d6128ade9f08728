"""Security primitives with no I/O: session ids, session tokens and websocket origin checks.

This package imports only the standard library and `aperture.errors`. `tokens` mints and verifies
session ids and tokens byte-compatibly with `bokeh.util.token` (signing in `signing`, ids in
`session_ids`, decoding in `token_payload`); `origins` decides whether a websocket upgrade's origin
is allowed, as Tornado 6.6 and `bokeh serve` do together. Peer mistakes raise `TokenError`.
"""

from aperture.security.origins import (
    has_wildcard,
    origin_allowed,
    parse_allowlist,
    websocket_origin_allowed,
)
from aperture.security.tokens import (
    DEFAULT_EXPIRATION,
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
    sign_text,
    utc_now,
    verify_token,
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
    "has_wildcard",
    "origin_allowed",
    "parse_allowlist",
    "sign_text",
    "utc_now",
    "verify_token",
    "websocket_origin_allowed",
]

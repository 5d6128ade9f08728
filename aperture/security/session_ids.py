"""Secret keys and session ids, generated and checked exactly as Bokeh 3.9 does.

Generated secrets and ids are 44 characters drawn uniformly from `ID_ALPHABET` with the operating
system's CSPRNG (`secrets`, about 262 bits). A signed id is `<base>.<sign_text(secret, base)>`; the
base may be any string, and checking splits at the first `.`. In unsigned mode every id is accepted
(emptiness is the caller's concern). The secret is the raw UTF-8 bytes of `BOKEH_SECRET_KEY`.
"""

from __future__ import annotations

import secrets
import string

from aperture.security.signing import sign_text, signature_matches

__all__ = [
    "ID_ALPHABET",
    "ID_LENGTH",
    "check_session_id_signature",
    "generate_secret_key",
    "generate_session_id",
]

ID_ALPHABET = string.ascii_lowercase + string.ascii_uppercase + string.digits
"""The 62 symbols of generated session ids and secret keys, in Bokeh's order."""

ID_LENGTH = 44
"""Length of generated session ids (before any signature) and of generated secret keys."""

_KEPT = 256 - 256 % len(ID_ALPHABET)  # 248: the bytes that map onto the symbols evenly
_SYMBOL_OF_BYTE = bytes(ord(ID_ALPHABET[byte % len(ID_ALPHABET)]) for byte in range(256))
_UNUSED_BYTES = bytes(range(_KEPT, 256))


def _random_string(length: int = ID_LENGTH) -> str:
    # Random bytes below 248 (= 4 * 62) mapped to `byte % 62`: each kept byte is a uniform,
    # independent symbol, as a `secrets.choice` per symbol gives, from one CSPRNG read and one
    # C-speed `translate` instead of `length` reads (70 us -> 2 us). 1 byte in 32 is dropped, so
    # `length + 16` bytes almost always suffice; the loop draws more when they do not.
    symbols = ""
    while len(symbols) < length:
        symbols += secrets.token_bytes(length + 16).translate(_SYMBOL_OF_BYTE, _UNUSED_BYTES).decode("ascii")
    return symbols[:length]


def generate_secret_key() -> str:
    """A fresh secret key, as printed by `bokeh secret` (44 characters)."""
    return _random_string()


def generate_session_id(secret: bytes | None = None, signed: bool = False) -> str:
    """A fresh 44-character session id; with `signed`, followed by `.` and its signature."""
    base = _random_string()
    if not signed:
        return base
    if secret is None:
        raise ValueError("a secret key is required to sign session ids")
    return f"{base}.{sign_text(secret, base)}"


def check_session_id_signature(session_id: str, secret: bytes | None, signed: bool) -> bool:
    """True if the id is acceptable: always when unsigned, else `<base>.<valid signature>`.

    Never raises; with `signed` and no secret every id is refused.
    """
    if not signed:
        return True
    if secret is None:
        return False
    base, dot, signature = session_id.partition(".")
    if not dot:
        return False
    return signature_matches(secret, base, signature)

"""URL-safe base64 and HMAC-SHA256 signatures, byte-compatible with `bokeh.util.token`.

`b64url_encode` is URL-safe base64 with every trailing `=` removed; `b64url_decode` restores the
padding and refuses anything that is not base64 (it accepts both the URL-safe and the standard
alphabet, as Bokeh and BokehJS do, but unlike Bokeh it does not silently skip stray characters).
`sign_text` is the HMAC-SHA256 of a text's UTF-8 bytes under the raw secret-key bytes, encoded with
`b64url_encode` (always 43 characters). `signature_matches` compares in constant time and never
raises, whatever the peer sent. Nothing here parses JSON or knows what is being signed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

__all__ = ["b64url_decode", "b64url_encode", "sign_text", "signature_matches"]


def b64url_encode(data: bytes) -> str:
    """URL-safe base64 of `data` without `=` padding."""
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def b64url_decode(text: str) -> bytes:
    """Decode `b64url_encode` output (padding optional); raise `ValueError` on anything else."""
    stripped = text.rstrip("=")
    padded = stripped + "=" * (-len(stripped) % 4)
    # validate=True refuses characters outside the alphabet instead of skipping them; non-ASCII
    # text raises ValueError and bad lengths raise binascii.Error, a ValueError too.
    return base64.b64decode(padded, altchars=b"-_", validate=True)


def sign_text(secret: bytes, text: str) -> str:
    """`b64url(HMAC-SHA256(secret, utf8(text)))`, the 43-character signature Bokeh uses."""
    digest = hmac.new(secret, text.encode("utf-8"), hashlib.sha256).digest()
    return b64url_encode(digest)


def signature_matches(secret: bytes, text: str, signature: str) -> bool:
    """True if `signature` is `sign_text(secret, text)`, compared in constant time."""
    try:
        expected = sign_text(secret, text).encode("ascii")
    except UnicodeEncodeError:  # a lone surrogate: Bokeh could never have signed this text
        return False
    provided = signature.encode("utf-8", "surrogatepass")
    return hmac.compare_digest(expected, provided)

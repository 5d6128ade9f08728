"""Sealed cookies: what a browser carries for us between requests, encrypted and authenticated.

A value is `v1.` + base64url(nonce ‖ AES-256-GCM ciphertext) of a zlib-compressed JSON object
holding the data and its expiry. The key is derived with HKDF-SHA256 from the deployment's secret
(BOKEH_SECRET_KEY, else --cookie-secret) and the cookie's purpose, and the purpose is also the
associated data, so a value sealed for one purpose (the sign-in flow) never opens as another (the
session). Every instance with the same secret opens what another sealed; a value that was
altered, sealed with another key, or has expired does not open. Sealed values stay under
`MAX_VALUE_CHARS`, so name, value and attributes fit a browser's 4 KB per cookie.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = "v1."
MAX_VALUE_CHARS = 3800  # leaves room for the name and attributes within 4096 bytes
MAX_INFLATED = 64 * 1024  # a sealed value never inflates to more (a zip bomb would need our key anyway)
SESSION = "session"
FLOW = "flow"


class CookieInvalid(Exception):
    """A cookie value that does not open: the text says why (tampered, expired, ...)."""


class CookieTooLarge(Exception):
    """What was to be sealed does not fit in one cookie."""


@dataclass(frozen=True)
class CookieAttributes:
    """How a sealed cookie is set: always HttpOnly and SameSite=Lax, under the prefix."""

    path: str
    secure: bool

    def as_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for a web framework's set-cookie call."""
        return {"path": self.path, "httponly": True, "samesite": "Lax", "secure": self.secure}


def deployment_secret(secret_key: bytes | None, cookie_secret: str | None) -> bytes:
    """The secret cookies are sealed with: BOKEH_SECRET_KEY, else --cookie-secret."""
    if secret_key:
        return secret_key
    if cookie_secret:
        return cookie_secret.encode("utf-8")
    raise ValueError("sealed cookies need BOKEH_SECRET_KEY or --cookie-secret")


def deployment_binding(*parts: str | tuple[str, ...] | None) -> bytes:
    """A digest of what makes a deployment's sign-in its own (issuer, client, who may sign in): a
    cookie sealed under one binding never opens under another, and changing who may sign in ends
    every sign-in made under the old rules."""
    digest = hashlib.sha256()
    for part in parts:
        text = "\x1f".join(sorted(part)) if isinstance(part, tuple) else (part or "")
        digest.update(text.encode("utf-8") + b"\x1e")
    return digest.digest()


class CookieSealer:
    """Seals and opens cookie values for named purposes, with an injectable wall clock."""

    def __init__(
        self, secret: bytes, *, clock: Callable[[], float] = time.time, binding: bytes = b""
    ) -> None:
        """`binding` names the deployment (see `deployment_binding`): it goes into every key, so two
        deployments sharing a secret on one host (where browsers send each other's cookies) cannot
        open each other's cookies."""
        if not secret:
            raise ValueError("sealed cookies need a non-empty secret")
        self._secret = secret
        self._binding = binding
        self._clock = clock
        self._ciphers: dict[str, AESGCM] = {}

    def _cipher(self, purpose: str) -> AESGCM:
        cipher = self._ciphers.get(purpose)
        if cipher is None:
            key = HKDF(
                algorithm=hashes.SHA256(),
                length=32,
                salt=b"aperture sealed cookies",
                info=b"aperture cookie purpose: " + purpose.encode("utf-8") + b"\0" + self._binding,
            ).derive(self._secret)
            cipher = self._ciphers[purpose] = AESGCM(key)
        return cipher

    def seal(self, purpose: str, data: dict[str, Any], expires_at: float) -> str:
        """The sealed value; raises CookieTooLarge when it would not fit in a cookie."""
        plain = zlib.compress(json.dumps({"exp": expires_at, "d": data}, separators=(",", ":")).encode())
        nonce = os.urandom(12)
        sealed = nonce + self._cipher(purpose).encrypt(nonce, plain, purpose.encode("utf-8"))
        value = VERSION + base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")
        if len(value) > MAX_VALUE_CHARS:
            raise CookieTooLarge(f"{len(value)} characters sealed, at most {MAX_VALUE_CHARS} fit in a cookie")
        return value

    def open(self, purpose: str, value: str) -> dict[str, Any]:
        """The data sealed in `value` for `purpose`; raises CookieInvalid otherwise."""
        if not value.startswith(VERSION) or len(value) > MAX_VALUE_CHARS + 100:
            raise CookieInvalid("not a sealed value of this server")
        text = value[len(VERSION) :]
        try:
            sealed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            raise CookieInvalid("not a sealed value of this server") from None
        if len(sealed) < 12 + 16:
            raise CookieInvalid("not a sealed value of this server")
        try:
            compressed = self._cipher(purpose).decrypt(sealed[:12], sealed[12:], purpose.encode("utf-8"))
        except InvalidTag:
            raise CookieInvalid("altered, or sealed with another key") from None
        try:
            inflater = zlib.decompressobj()
            envelope = json.loads(inflater.decompress(compressed, MAX_INFLATED))
        except (zlib.error, ValueError):
            raise CookieInvalid("unreadable after decryption") from None
        if not isinstance(envelope, dict) or not isinstance(envelope.get("d"), dict):
            raise CookieInvalid("unreadable after decryption")
        expires_at = envelope.get("exp")
        if not isinstance(expires_at, (int, float)) or self._clock() >= expires_at:
            raise CookieInvalid("expired")
        data: dict[str, Any] = envelope["d"]
        return data

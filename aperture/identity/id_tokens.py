"""Checking an id_token: the provider's signature, then the claims that bind it to this sign-in.

The signature is checked by joserfc against the key the header's `kid` names, with only the
asymmetric algorithms the provider announced (see `discovery.SAFE_ALGORITHMS`): `alg: none`
and HS256 signed with the public key as a shared secret are refused before any key is used.
Then: `iss` is the provider's exact issuer (Google's documented scheme-less alias aside); `aud` holds our client id, and when it holds other
audiences too `azp` must be our client id; `exp` has not passed and `iat` is not in the future
(each within `skew` seconds of clock difference); `nonce` is the one this browser's flow sent
(refreshed tokens need not carry one). Every refusal says what was wrong in plain words and
never includes the token.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError

from aperture.identity.keys import ProviderKeys, UnknownKey

MAX_TOKEN_CHARS = 32_000
_ISSUER_ALIASES = {"accounts.google.com": "https://accounts.google.com"}  # Google documents both forms
CLOCK_SKEW = 60.0  # seconds of clock difference tolerated between us and the provider


class TokenRefused(Exception):
    """The id_token failed a check; the text says which, in plain words."""


@dataclass(frozen=True)
class Expected:
    """What a valid id_token must say for this sign-in."""

    issuer: str
    client_id: str
    algorithms: tuple[str, ...]
    nonce: str | None  # None: no nonce is expected (a refresh), though one may be present
    now: float  # wall-clock seconds
    skew: float = CLOCK_SKEW


async def verify_id_token(token: str, keys: ProviderKeys, expected: Expected) -> dict[str, Any]:
    """The token's claims once every check passed; raises TokenRefused otherwise."""
    if not token or len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
        raise TokenRefused("the id_token is not a signed JWT")
    try:
        header = jws.extract_compact(token.encode("ascii")).headers()
    except (JoseError, ValueError, UnicodeError):
        raise TokenRefused("the id_token is not a signed JWT") from None
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in expected.algorithms:
        raise TokenRefused(f"the id_token is signed with algorithm {str(alg)[:20]!r}, which is not accepted")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise TokenRefused("the id_token's key id is not a string")
    try:
        key = await keys.key_for(kid)
    except UnknownKey as exc:
        raise TokenRefused(
            f"the id_token is signed with a key the provider does not publish ({exc})"
        ) from None
    try:
        claims = jwt.decode(token, key, algorithms=[alg]).claims
    except (JoseError, ValueError, TypeError):
        raise TokenRefused("the id_token's signature does not verify with the provider's key") from None
    check_claims(claims, expected)
    return dict(claims)


def check_claims(claims: dict[str, Any], expected: Expected) -> None:
    """The claim checks of OpenID Connect Core 3.1.3.7, on claims whose signature was verified."""
    if (
        claims.get("iss") != expected.issuer
        and _ISSUER_ALIASES.get(str(claims.get("iss"))) != expected.issuer
    ):
        raise TokenRefused("the id_token was issued by another issuer")
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience if isinstance(audience, list) else []
    if expected.client_id not in audiences:
        raise TokenRefused("the id_token is meant for another client (audience)")
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != expected.client_id:
        raise TokenRefused("the id_token was issued to another client (authorized party)")
    exp, iat = _number(claims.get("exp")), _number(claims.get("iat"))
    if exp is None or expected.now > exp + expected.skew:
        raise TokenRefused("the id_token has expired")
    if iat is None or iat > expected.now + expected.skew:
        raise TokenRefused("the id_token was issued in the future (check the clocks)")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise TokenRefused("the id_token names no subject")
    if expected.nonce is not None:
        nonce = claims.get("nonce")
        if not isinstance(nonce, str):
            raise TokenRefused("the id_token carries no nonce")
        if not hmac.compare_digest(nonce.encode(), expected.nonce.encode()):
            raise TokenRefused("the id_token's nonce is not this sign-in's (a replayed token?)")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

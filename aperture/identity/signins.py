"""Who signed in: the user and claims taken from a verified id_token, the allow-lists, and the
session cookie that carries a sign-in between requests.

The session cookie holds the user name, the claims the operator passes to apps (`--oidc-pass-claims`
plus the user claim), the subject, when the sign-in ends (the id_token's `exp`), and, when the
provider gave them, the refresh token and the id_token (the hint for logging out at the provider).
It is sealed (see `cookies`); a sign-in too big for one cookie drops the id_token first, then the
refresh token, with a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

from aperture.config import OidcSettings
from aperture.identity.cookies import SESSION, CookieInvalid, CookieSealer, CookieTooLarge
from aperture.identity.flow import SignInRefused

log = logging.getLogger("aperture.identity")

DEFAULT_USER_CLAIMS = ("preferred_username", "email", "sub")
REFRESH_WINDOW = 12 * 3600.0  # how long a refresh token is kept when the provider does not say


@dataclass(frozen=True)
class Identity:
    """A signed-in user. `expires_at` is wall-clock seconds; tokens are never shown to apps."""

    user: str
    subject: str
    claims: dict[str, Any] = field(default_factory=dict)
    expires_at: float = 0.0
    refresh_token: str | None = field(default=None, repr=False)
    id_token: str | None = field(default=None, repr=False)
    refresh_until: float | None = None  # wall-clock end of the refresh token's use, if known
    issued_at: float = 0.0  # the id_token's iat

    def refresh_margin(self, most: float) -> float:
        """How long before its end the sign-in is refreshed: `most`, or a quarter of short lifetimes."""
        return min(most, max(0.0, self.expires_at - self.issued_at) / 4)

    def __str__(self) -> str:
        return self.user


def claim_at(claims: dict[str, Any], name: str) -> Any:
    """A claim by name, or by a dotted path into nested objects (Keycloak's `realm_access.roles`)."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def identity_from_claims(settings: OidcSettings, claims: dict[str, Any]) -> Identity:
    """The identity verified claims describe, if the allow-lists let it in; SignInRefused otherwise."""
    names = (settings.user_claim,) if settings.user_claim else DEFAULT_USER_CLAIMS
    user_claim, user = next(
        (
            (name, claims.get(name))
            for name in names
            if isinstance(claims.get(name), str) and claims.get(name)
        ),
        (names[0], None),
    )
    if not isinstance(user, str):
        raise SignInRefused(f"the provider's token has no {' or '.join(names)} claim to name the user by")
    if settings.allowed_users and user not in settings.allowed_users:
        raise SignInRefused(f"the user {user!r} is not allowed to use this server")
    if settings.allowed_groups:
        held = _names(claim_at(claims, settings.groups_claim))
        if not held & set(settings.allowed_groups):
            raise SignInRefused(f"the user {user!r} is in none of the groups allowed to use this server")
    passed = {name: claim_at(claims, name) for name in (user_claim, *settings.pass_claims)}
    return Identity(
        user=user,
        subject=str(claims["sub"]),
        claims={name: value for name, value in passed.items() if value is not None},
        expires_at=float(claims["exp"]),
        issued_at=float(claims["iat"]),
    )


def seal_identity(sealer: CookieSealer, identity: Identity, now: float) -> tuple[str, float]:
    """The session cookie's value and when it expires (later than the sign-in when refreshable)."""
    data: dict[str, Any] = {
        "u": identity.user,
        "s": identity.subject,
        "c": identity.claims,
        "e": identity.expires_at,
        "t": identity.issued_at,
    }
    if identity.id_token:
        data["i"] = identity.id_token
    until = identity.expires_at
    if identity.refresh_token:
        data["r"] = identity.refresh_token
        if identity.refresh_until:
            data["ru"] = identity.refresh_until
        until = max(until, identity.refresh_until or now + REFRESH_WINDOW)
    try:
        return sealer.seal(SESSION, data, until), until
    except CookieTooLarge:
        pass
    if data.pop("i", None) is not None:
        log.warning("Sign-in of %r too big for a cookie: dropped its id_token (logout hint)", identity.user)
        try:
            return sealer.seal(SESSION, data, until), until
        except CookieTooLarge:
            pass
    if data.pop("r", None) is not None:
        data.pop("ru", None)
        until = identity.expires_at
        log.warning("Sign-in of %r too big for a cookie: dropped its refresh token", identity.user)
        try:
            return sealer.seal(SESSION, data, until), until
        except CookieTooLarge:
            pass
    raise SignInRefused("the sign-in is too big to keep in a cookie: pass fewer claims (--oidc-pass-claims)")


def _names(value: Any) -> set[str]:
    """Group or role names from a claim: one string or a list of them."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, list):
        return {item for item in value if isinstance(item, str)}
    return set()


def open_identity(sealer: CookieSealer, value: str) -> Identity:
    """The identity a session cookie carries; CookieInvalid when it does not open."""
    data = sealer.open(SESSION, value)
    user, subject, claims, expires_at = data.get("u"), data.get("s"), data.get("c"), data.get("e")
    if not (isinstance(user, str) and isinstance(subject, str) and isinstance(claims, dict)):
        raise CookieInvalid("incomplete")
    if not isinstance(expires_at, (int, float)):
        raise CookieInvalid("incomplete")
    refresh, id_token, refresh_until, issued_at = data.get("r"), data.get("i"), data.get("ru"), data.get("t")
    return Identity(
        user=user,
        subject=subject,
        claims=claims,
        expires_at=float(expires_at),
        refresh_token=refresh if isinstance(refresh, str) else None,
        id_token=id_token if isinstance(id_token, str) else None,
        refresh_until=float(refresh_until) if isinstance(refresh_until, (int, float)) else None,
        issued_at=float(issued_at) if isinstance(issued_at, (int, float)) else 0.0,
    )


def renewed(old: Identity, new: Identity) -> Identity:
    """A refreshed identity keeps the old tokens the provider did not replace."""
    return replace(
        new,
        refresh_token=new.refresh_token or old.refresh_token,
        id_token=new.id_token or old.id_token,
        refresh_until=new.refresh_until or old.refresh_until,
    )

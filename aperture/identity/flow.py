"""The authorization-code flow with PKCE, state and nonce, as plain data in and out.

`begin` makes the secrets of one sign-in (state, nonce, PKCE verifier), seals them with the page to
return to in a flow cookie named after the state (so sign-ins begun in several tabs do not undo
each other), and gives the provider URL to send the browser to. `flow_for_callback` opens that
cookie again for the `state` the provider sends back; the web layer clears it at once, so a
replayed callback finds nothing. Token-endpoint requests (code exchange, refresh) and the
RP-initiated logout URL are built here too. Nothing here does I/O.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from aperture.identity.cookies import FLOW, CookieInvalid, CookieSealer
from aperture.identity.discovery import ProviderMetadata

FLOW_LIFETIME = 600  # seconds between leaving for the provider and coming back
FLOW_COOKIE_PREFIX = "aperture_oidc_flow_"
SESSION_COOKIE = "aperture_oidc"
MAX_FLOW_COOKIES = 5  # more sign-ins in flight than this from one browser: the old ones are dropped
MAX_NEXT_CHARS = 2000
_STATE = re.compile(r"^[A-Za-z0-9_-]{20,100}$")
_SAFE_IN_LOCATION = "!#$%&'()*+,/:;=?@[]~"


class SignInRefused(Exception):
    """Sign-in cannot go on; `reason` is shown to the user, `status` is the HTTP answer."""

    def __init__(self, reason: str, status: int = 403) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class FlowStart:
    """Where to send the browser, and the flow cookie to set first."""

    authorization_url: str
    cookie_name: str
    cookie_value: str
    max_age: int


@dataclass(frozen=True)
class FlowState:
    """What the callback needs from the flow cookie."""

    cookie_name: str
    nonce: str
    verifier: str
    next_path: str


def safe_next(value: str | None, prefix: str) -> tuple[str, bool]:
    """(where to return after sign-in, whether `value` was acceptable): only a path on this server.

    It must start with a single "/" (not "//" nor "/\\", which browsers read as another host), hold
    no backslash and no control character, and not be overlong; otherwise the prefix's root is used.
    """
    home = (prefix or "") + "/"
    if not value:
        return home, True
    bad = (
        not value.startswith("/")
        or value.startswith("//")
        or "\\" in value
        or len(value) > MAX_NEXT_CHARS
        or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value)
    )
    if bad:
        return home, False
    return quote(value, safe=_SAFE_IN_LOCATION), True


def flow_cookie_name(state: str) -> str:
    return FLOW_COOKIE_PREFIX + state[:16]


def begin(
    sealer: CookieSealer,
    metadata: ProviderMetadata,
    *,
    client_id: str,
    scopes: tuple[str, ...],
    redirect_uri: str,
    next_path: str,
    now: float,
) -> FlowStart:
    """A new sign-in: its flow cookie and the provider's authorization URL."""
    state, nonce, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    value = sealer.seal(FLOW, {"s": state, "n": nonce, "v": verifier, "p": next_path}, now + FLOW_LIFETIME)
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            # OpenID Connect Core 11: providers issue a refresh token for offline_access only when
            # the user was asked to consent in this request.
            **({"prompt": "consent"} if "offline_access" in scopes else {}),
        }
    )
    endpoint = metadata.authorization_endpoint
    url = endpoint + ("&" if "?" in endpoint else "?") + query
    return FlowStart(url, flow_cookie_name(state), value, FLOW_LIFETIME)


def flow_for_callback(sealer: CookieSealer, cookies: Mapping[str, str], state: str) -> FlowState:
    """The flow this callback's `state` belongs to; SignInRefused when there is none."""
    if not _STATE.match(state):
        raise SignInRefused("the sign-in response is malformed (state)", 400)
    name = flow_cookie_name(state)
    value = cookies.get(name)
    if value is None:
        raise SignInRefused(
            "this sign-in was not started in this browser, was already used, or took more than 10 minutes"
        )
    try:
        data = sealer.open(FLOW, value)
    except CookieInvalid as exc:
        raise SignInRefused(f"this sign-in's cookie is not valid ({exc})") from None
    fields = [data.get(key) for key in ("s", "n", "v", "p")]
    if not all(isinstance(item, str) for item in fields):
        raise SignInRefused("this sign-in's cookie is not valid (incomplete)")
    if not hmac.compare_digest(str(data["s"]).encode(), state.encode()):
        raise SignInRefused("the sign-in response does not belong to this sign-in (state)")
    return FlowState(name, str(data["n"]), str(data["v"]), str(data["p"]))


def stale_flow_cookies(cookies: Mapping[str, str]) -> list[str]:
    """Flow cookies to drop before a new sign-in: all of them once too many are in flight."""
    names = [name for name in cookies if name.startswith(FLOW_COOKIE_PREFIX)]
    return names if len(names) >= MAX_FLOW_COOKIES else []


def token_request(
    metadata: ProviderMetadata, client_id: str, client_secret: str, form: dict[str, str]
) -> tuple[dict[str, str], bytes]:
    """Headers and body of a token-endpoint POST, authenticated the way the provider accepts."""
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    form = dict(form)
    if metadata.token_auth_method == "client_secret_post":
        form.update(client_id=client_id, client_secret=client_secret)
    else:  # RFC 6749 2.3.1: each part form-encoded, then Basic
        pair = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    return headers, urlencode(form).encode("ascii")


def code_exchange_form(code: str, redirect_uri: str, verifier: str) -> dict[str, str]:
    return {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }


def refresh_form(refresh_token: str) -> dict[str, str]:
    return {"grant_type": "refresh_token", "refresh_token": refresh_token}


@dataclass(frozen=True)
class TokenSet:
    """The parts of a token response Aperture uses."""

    id_token: str | None
    refresh_token: str | None
    expires_in: float | None
    refresh_expires_in: float | None

    @classmethod
    def from_response(cls, body: dict[str, Any]) -> TokenSet:
        def text(name: str) -> str | None:
            value = body.get(name)
            return value if isinstance(value, str) and value else None

        def seconds(name: str) -> float | None:
            value = body.get(name)
            if isinstance(value, str) and value.isdigit():
                value = int(value)
            return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

        return cls(
            text("id_token"), text("refresh_token"), seconds("expires_in"), seconds("refresh_expires_in")
        )


def provider_error(body: dict[str, Any]) -> str:
    """The provider's error code, safe to show and log (letters, digits and _ only)."""
    code = body.get("error")
    return re.sub(r"[^A-Za-z0-9_]", "", code)[:40] if isinstance(code, str) else ""


def logout_url(
    metadata: ProviderMetadata, *, client_id: str, id_token: str | None, post_logout_redirect_uri: str
) -> str | None:
    """The provider's RP-initiated logout URL, or None when it has no end_session_endpoint."""
    endpoint = metadata.end_session_endpoint
    if endpoint is None:
        return None
    params = {"client_id": client_id, "post_logout_redirect_uri": post_logout_redirect_uri}
    if id_token:
        params = {"id_token_hint": id_token, **params}
    return endpoint + ("&" if "?" in endpoint else "?") + urlencode(params)

"""An in-memory OpenID issuer for unit tests: real keys and real signatures, no network.

`LocalIssuer` signs id_tokens with RSA keys made by joserfc, serves its discovery document,
key set and token endpoint through the `Transport` interface the identity package calls, checks
PKCE at the token endpoint, and counts every request, so tests can see what the relying party
asked for. Its behaviour is switched by plain attributes (a token response to return instead, a
refresh to refuse). The end-to-end tests use a certified provider instead (tests/identity/provider).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from joserfc import jwt
from joserfc.jwk import RSAKey

from aperture.identity.transport import Answer, ProviderError

ISSUER = "https://issuer.test/realm"
CLIENT_ID = "aperture-test"
CLIENT_SECRET = "s3cret-for-tests"


def make_key(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "alg": "RS256", "use": "sig"}, private=True)


class LocalIssuer:
    """Discovery, JWKS and token endpoint of a test issuer, as a Transport."""

    def __init__(self, *, issuer: str = ISSUER, end_session: bool = True) -> None:
        self.issuer = issuer
        self.signing_key = make_key("key-1")
        self.published = [self.signing_key]
        self.requests: list[tuple[str, str]] = []
        self.codes: dict[str, dict[str, Any]] = {}  # code -> claims, challenge, redirect_uri
        self.refresh_tokens: dict[str, dict[str, Any]] = {}
        self.refuse_refresh = False
        self.rotate_refresh_tokens = True
        self.token_lifetime = 300
        self.document: dict[str, Any] = {
            "issuer": issuer,
            "authorization_endpoint": issuer + "/auth",
            "token_endpoint": issuer + "/token",
            "jwks_uri": issuer + "/jwks",
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        }
        if end_session:
            self.document["end_session_endpoint"] = issuer + "/logout"
        self.down = False

    # -- what tests use -------------------------------------------------------------

    def id_token(
        self, key: RSAKey | None = None, header: Mapping[str, Any] | None = None, **claims: Any
    ) -> str:
        """A signed id_token: valid for our client unless `claims` say otherwise."""
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "sub": "user-1",
            "preferred_username": "alice",
            "email": "alice@example.com",
            "groups": ["staff"],
            "iat": now,
            "exp": now + self.token_lifetime,
        }
        body.update(claims)
        body = {name: value for name, value in body.items() if value is not None}
        key = key or self.signing_key
        return jwt.encode({"alg": "RS256", "kid": key.kid, **(header or {})}, body, key)

    def authorize(self, authorization_url: str, **claims: Any) -> tuple[str, str]:
        """What the provider does after the user signs in: a code for these claims, and the state."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(authorization_url).query).items()}
        assert query["response_type"] == "code" and query["code_challenge_method"] == "S256"
        code = secrets.token_urlsafe(16)
        self.codes[code] = {
            "claims": {"nonce": query["nonce"], **claims},
            "challenge": query["code_challenge"],
            "redirect_uri": query["redirect_uri"],
        }
        return code, query["state"]

    def count(self, path: str) -> int:
        return sum(1 for _, url in self.requests if urlsplit(url).path.endswith(path))

    # -- the Transport ----------------------------------------------------------------

    async def request(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None, body: bytes | None = None
    ) -> Answer:
        self.requests.append((method, url))
        if self.down:
            raise ProviderError(f"{urlsplit(url).netloc}: connection refused")
        path = urlsplit(url).path
        if path.endswith("/.well-known/openid-configuration"):
            return _json(200, self.document)
        if path.endswith("/jwks"):
            return _json(200, {"keys": [key.as_dict(private=False) for key in self.published]})
        if path.endswith("/token") and method == "POST":
            return self._token(
                dict(headers or {}), {k: v[0] for k, v in parse_qs((body or b"").decode()).items()}
            )
        return _json(404, {"error": "not_found"})

    def _token(self, headers: dict[str, str], form: dict[str, str]) -> Answer:
        if not self._client_authenticated(headers, form):
            return _json(401, {"error": "invalid_client"})
        if form.get("grant_type") == "authorization_code":
            grant = self.codes.pop(form.get("code", ""), None)
            if grant is None or grant["redirect_uri"] != form.get("redirect_uri"):
                return _json(400, {"error": "invalid_grant"})
            verifier = form.get("code_verifier", "").encode()
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=").decode()
            if challenge != grant["challenge"]:
                return _json(400, {"error": "invalid_grant"})
            claims = grant["claims"]
        elif form.get("grant_type") == "refresh_token":
            held = self.refresh_tokens.get(form.get("refresh_token", ""))
            if held is None or self.refuse_refresh:
                return _json(400, {"error": "invalid_grant"})
            if self.rotate_refresh_tokens:
                del self.refresh_tokens[form["refresh_token"]]
            claims = {name: value for name, value in held.items() if name != "nonce"}
        else:
            return _json(400, {"error": "unsupported_grant_type"})
        refresh = secrets.token_urlsafe(24)
        self.refresh_tokens[refresh] = claims
        return _json(
            200,
            {
                "access_token": secrets.token_urlsafe(16),
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
                "id_token": self.id_token(**claims),
                "refresh_token": refresh,
            },
        )

    def _client_authenticated(self, headers: dict[str, str], form: dict[str, str]) -> bool:
        basic = headers.get("Authorization", "")
        if basic.startswith("Basic "):
            return base64.b64decode(basic[6:]).decode() == f"{CLIENT_ID}:{CLIENT_SECRET}"
        return form.get("client_id") == CLIENT_ID and form.get("client_secret") == CLIENT_SECRET


def _json(status: int, value: Any) -> Answer:
    return Answer(status, json.dumps(value).encode())

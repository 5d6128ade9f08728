"""The provider's metadata, from `<issuer>/.well-known/openid-configuration`, cached for a while.

The document must name the configured issuer exactly (a trailing "/" aside, since `--oidc-issuer`
is stored without one), or nothing it says is trusted: that is what stops a look-alike document
from sending users elsewhere. It must give the authorization, token and key-set endpoints. Only
asymmetric signing algorithms it lists are ever accepted for id_tokens (never `none`, never HS*:
a shared-secret algorithm would let anyone holding the public keys forge tokens).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aperture.identity.transport import ProviderError, Transport

DISCOVERY_TTL = 3600.0  # seconds a fetched document is used before it is fetched again
SAFE_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


@dataclass(frozen=True)
class ProviderMetadata:
    """What Aperture uses from a discovery document."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    end_session_endpoint: str | None
    algorithms: tuple[str, ...]
    token_auth_methods: tuple[str, ...]

    @classmethod
    def from_document(cls, document: dict[str, Any], expected_issuer: str) -> ProviderMetadata:
        issuer = document.get("issuer")
        if not isinstance(issuer, str) or issuer.rstrip("/") != expected_issuer.rstrip("/"):
            raise ProviderError(
                f"the discovery document names the issuer {issuer!r}, not {expected_issuer!r} (--oidc-issuer)"
            )

        def url(name: str, required: bool = True) -> str | None:
            value = document.get(name)
            if isinstance(value, str) and value.startswith(("https://", "http://")):
                return value
            if required:
                raise ProviderError(f"the discovery document has no usable {name}")
            return None

        offered = document.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = (
            tuple(alg for alg in offered if alg in SAFE_ALGORITHMS) if isinstance(offered, list) else ()
        )
        if not algorithms:
            raise ProviderError(
                f"the provider signs id_tokens only with algorithms Aperture refuses: {offered!r}"
            )
        methods = document.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        return cls(
            issuer=issuer,
            authorization_endpoint=str(url("authorization_endpoint")),
            token_endpoint=str(url("token_endpoint")),
            jwks_uri=str(url("jwks_uri")),
            end_session_endpoint=url("end_session_endpoint", required=False),
            algorithms=algorithms,
            token_auth_methods=tuple(m for m in methods if isinstance(m, str))
            if isinstance(methods, list)
            else (),
        )

    @property
    def token_auth_method(self) -> str:
        """client_secret_basic unless the provider offers only client_secret_post."""
        if (
            "client_secret_post" in self.token_auth_methods
            and "client_secret_basic" not in self.token_auth_methods
        ):
            return "client_secret_post"
        return "client_secret_basic"


class Discovery:
    """The provider's metadata, fetched on first use and again once `ttl` seconds have passed.

    Concurrent callers share one fetch. When a refetch fails, the document already held is kept
    (a provider hiccup does not sign everyone out); with none held, the error goes to the caller.
    """

    def __init__(
        self,
        issuer: str,
        transport: Transport,
        *,
        ttl: float = DISCOVERY_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self.url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        self._transport = transport
        self._ttl = ttl
        self._clock = clock
        self._held: ProviderMetadata | None = None
        self._fetched_at = 0.0
        self._pending: asyncio.Future[ProviderMetadata] | None = None

    async def metadata(self) -> ProviderMetadata:
        if self._held is not None and self._clock() - self._fetched_at < self._ttl:
            return self._held
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._fetch())
        pending = self._pending
        try:
            return await asyncio.shield(pending)
        except ProviderError:
            if self._held is not None:
                return self._held
            raise
        finally:
            if pending.done() and self._pending is pending:
                self._pending = None

    async def _fetch(self) -> ProviderMetadata:
        answer = await self._transport.request("GET", self.url)
        if answer.status != 200:
            raise ProviderError(f"discovery {self.url} answered {answer.status}")
        metadata = ProviderMetadata.from_document(answer.json_object(f"discovery {self.url}"), self.issuer)
        self._held, self._fetched_at = metadata, self._clock()
        return metadata

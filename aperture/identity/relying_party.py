"""`RelyingParty`: Aperture as an OpenID Connect client, the one object the web layer calls.

It begins sign-ins, finishes them at the callback (flow cookie, code exchange, id_token checks,
allow-lists, session cookie), reads the session cookie of each request, refreshes a sign-in that
is about to end, and builds the logout redirect. It keeps no per-user state between requests
except a short memory of refreshes: concurrent requests carrying the same refresh token share one
refresh, and requests that still carry the old cookie a moment later get the same result (the
provider may have rotated the refresh token, so a second refresh would fail).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from aperture.config import OidcSettings
from aperture.identity import flow
from aperture.identity.cookies import CookieInvalid, CookieSealer, deployment_binding
from aperture.identity.discovery import Discovery, ProviderMetadata
from aperture.identity.flow import FlowStart, SignInRefused, TokenSet
from aperture.identity.id_tokens import Expected, TokenRefused, verify_id_token
from aperture.identity.keys import ProviderKeys
from aperture.identity.signins import Identity, identity_from_claims, open_identity, renewed, seal_identity
from aperture.identity.transport import ProviderError, Transport

log = logging.getLogger("aperture.identity")

REFRESH_BEFORE = 60.0  # seconds before a sign-in ends when a request refreshes it
RECENT_REFRESHES = 256  # refresh results remembered, for requests still carrying the old cookie
RECENT_FOR = 60.0  # seconds they are remembered


@dataclass(frozen=True)
class Finished:
    """A completed sign-in: the session cookie to set and where to go."""

    identity: Identity
    cookie_value: str
    expires_at: float
    next_path: str
    flow_cookie: str


@dataclass(frozen=True)
class Current:
    """A request's sign-in: who (None: nobody), and the session cookie to set or clear, if any."""

    identity: Identity | None
    cookie_value: str | None = None
    cookie_expires_at: float = 0.0
    clear_cookie: bool = False
    problem: str | None = None  # why a cookie was there but is not a sign-in (for the log)


class RelyingParty:
    """Sign-in with one OpenID provider for one deployment (every instance builds the same one)."""

    def __init__(
        self,
        settings: OidcSettings,
        secret: bytes,
        transport: Transport,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        binding = deployment_binding(
            settings.issuer,
            settings.client_id,
            settings.user_claim,
            settings.groups_claim,
            settings.allowed_users,
            settings.allowed_groups,
            settings.pass_claims,
        )
        self.sealer = CookieSealer(secret, clock=clock, binding=binding)
        self.transport = transport
        self.clock = clock
        self._monotonic = monotonic
        self.discovery = Discovery(settings.issuer, transport, clock=monotonic)
        self.keys = ProviderKeys(self._jwks_uri, transport, clock=monotonic)
        self._refreshing: dict[str, asyncio.Future[Identity | None]] = {}
        self._recent: OrderedDict[str, tuple[float, Identity | None]] = OrderedDict()

    async def _jwks_uri(self) -> str:
        return (await self.discovery.metadata()).jwks_uri

    # -- the flow ----------------------------------------------------------------

    async def begin(self, next_path: str, redirect_uri: str) -> FlowStart:
        """A new sign-in; ProviderError when the provider's metadata cannot be had."""
        metadata = await self.discovery.metadata()
        return flow.begin(
            self.sealer,
            metadata,
            client_id=self.settings.client_id,
            scopes=self.settings.scopes,
            redirect_uri=redirect_uri,
            next_path=next_path,
            now=self.clock(),
        )

    async def finish(
        self, arguments: Mapping[str, str], cookies: Mapping[str, str], redirect_uri: str
    ) -> Finished:
        """Complete the sign-in the provider sent back; SignInRefused with the reason otherwise."""
        error, code, state = arguments.get("error"), arguments.get("code"), arguments.get("state")
        if error is not None:
            shown = flow.provider_error({"error": error}) or "an error"
            raise SignInRefused(f"the provider refused the sign-in ({shown})")
        if not code or not state or len(code) > 4096:
            raise SignInRefused("the sign-in response is malformed (it needs code and state)", 400)
        pending = flow.flow_for_callback(self.sealer, cookies, state)
        metadata = await self._metadata_or_refuse()
        returned_issuer = arguments.get("iss")  # RFC 9207: names who answered, against mix-up attacks
        if returned_issuer is not None and returned_issuer.rstrip("/") != metadata.issuer.rstrip("/"):
            raise SignInRefused("the sign-in response names another provider (iss)")
        tokens = await self._token_call(
            metadata, flow.code_exchange_form(code, redirect_uri, pending.verifier), "authorization code"
        )
        if tokens.id_token is None:
            raise SignInRefused("the provider's token response has no id_token")
        identity = await self._identity_from(metadata, tokens, nonce=pending.nonce)
        value, until = seal_identity(self.sealer, identity, self.clock())
        return Finished(identity, value, until, pending.next_path, pending.cookie_name)

    async def _metadata_or_refuse(self) -> ProviderMetadata:
        try:
            return await self.discovery.metadata()
        except ProviderError as exc:
            raise SignInRefused(f"the provider cannot be reached ({exc})", 502) from None

    async def _token_call(self, metadata: ProviderMetadata, form: dict[str, str], what: str) -> TokenSet:
        headers, body = flow.token_request(
            metadata, self.settings.client_id, self.settings.client_secret, form
        )
        try:
            answer = await self.transport.request("POST", metadata.token_endpoint, headers=headers, body=body)
        except ProviderError as exc:
            raise SignInRefused(f"the provider's token endpoint cannot be reached ({exc})", 502) from None
        try:
            response = answer.json_object("token endpoint")
        except ProviderError:
            response = {}
        if answer.status != 200:
            code = flow.provider_error(response) or f"status {answer.status}"
            raise SignInRefused(f"the provider refused the {what} ({code})")
        return TokenSet.from_response(response)

    async def _identity_from(
        self, metadata: ProviderMetadata, tokens: TokenSet, *, nonce: str | None
    ) -> Identity:
        assert tokens.id_token is not None
        expected = Expected(
            issuer=metadata.issuer,
            client_id=self.settings.client_id,
            algorithms=metadata.algorithms,
            nonce=nonce,
            now=self.clock(),
        )
        try:
            claims = await verify_id_token(tokens.id_token, self.keys, expected)
        except TokenRefused as exc:
            raise SignInRefused(str(exc)) from None
        except ProviderError as exc:
            raise SignInRefused(f"the provider's keys cannot be fetched ({exc})", 502) from None
        identity = identity_from_claims(self.settings, claims)
        refresh_until = self.clock() + tokens.refresh_expires_in if tokens.refresh_expires_in else None
        return replace(
            identity,
            refresh_token=tokens.refresh_token,
            id_token=tokens.id_token,
            refresh_until=refresh_until,
        )

    # -- each request ------------------------------------------------------------

    async def current(self, cookie: str | None, *, can_set_cookie: bool = True) -> Current:
        """The sign-in a request's session cookie carries, refreshed when it is about to end."""
        if cookie is None:
            return Current(None)
        try:
            identity = open_identity(self.sealer, cookie)
        except CookieInvalid as exc:
            return Current(None, clear_cookie=True, problem=str(exc))
        now = self.clock()
        if now < identity.expires_at - identity.refresh_margin(REFRESH_BEFORE):
            return Current(identity)
        if identity.refresh_token is None:
            if now < identity.expires_at:
                return Current(identity)
            return Current(None, clear_cookie=True, problem="the sign-in has ended")
        try:
            fresh = await self.refresh(identity)
        except ProviderError:  # the refresh token may still be good once the provider is back: keep it
            if now < identity.expires_at:
                return Current(identity)
            return Current(
                None, problem="the sign-in has ended and the provider cannot be reached to refresh it"
            )
        if fresh is None:
            if now < identity.expires_at:
                return Current(identity)  # not refreshed, but still valid
            return Current(
                None, clear_cookie=True, problem="the sign-in has ended and could not be refreshed"
            )
        if not can_set_cookie:
            return Current(fresh)
        try:
            value, until = seal_identity(self.sealer, fresh, self.clock())
        except SignInRefused:
            return Current(fresh)
        return Current(fresh, cookie_value=value, cookie_expires_at=until)

    async def refresh(self, identity: Identity) -> Identity | None:
        """The sign-in renewed with its refresh token, or None when the provider will not renew it
        (remembered for a while); ProviderError when the provider cannot be reached (not remembered)."""
        if identity.refresh_token is None:
            return None
        key = hashlib.sha256(identity.refresh_token.encode()).hexdigest()
        now = self._monotonic()
        remembered = self._recent.get(key)
        if remembered is not None and now - remembered[0] < RECENT_FOR:
            return remembered[1]
        running = self._refreshing.get(key)
        if running is None:
            running = self._refreshing[key] = asyncio.ensure_future(self._refresh(identity))
            running.add_done_callback(lambda done: self._remember(key, done))
        return await asyncio.shield(running)

    def _remember(self, key: str, done: asyncio.Future[Identity | None]) -> None:
        self._refreshing.pop(key, None)
        if done.cancelled() or done.exception() is not None:
            return
        self._recent[key] = (self._monotonic(), done.result())
        while len(self._recent) > RECENT_REFRESHES:
            self._recent.popitem(last=False)

    async def _refresh(self, identity: Identity) -> Identity | None:
        assert identity.refresh_token is not None
        try:
            metadata = await self.discovery.metadata()
            tokens = await self._token_call(metadata, flow.refresh_form(identity.refresh_token), "refresh")
            if tokens.id_token is None:
                if tokens.expires_in is None:
                    raise SignInRefused("the refresh answer has neither an id_token nor an expiry")
                return replace(
                    identity,
                    expires_at=self.clock() + tokens.expires_in,
                    issued_at=self.clock(),
                    refresh_token=tokens.refresh_token or identity.refresh_token,
                )
            fresh = await self._identity_from(metadata, tokens, nonce=None)
            if fresh.subject != identity.subject:
                raise SignInRefused("the refreshed id_token names another subject")
            return renewed(identity, fresh)
        except ProviderError as exc:
            log.warning("OpenID Connect sign-in of %r not refreshed yet: %s", identity.user, exc)
            raise
        except SignInRefused as exc:
            if exc.status == 502:  # the provider could not be reached: try again later
                log.warning("OpenID Connect sign-in of %r not refreshed yet: %s", identity.user, exc.reason)
                raise ProviderError(exc.reason) from None
            log.info("OpenID Connect sign-in of %r not refreshed: %s", identity.user, exc.reason)
            return None

    # -- logout ------------------------------------------------------------------

    async def logout_redirect(self, cookie: str | None, post_logout_redirect_uri: str) -> str | None:
        """The provider's logout URL for this browser's sign-in, or None without one."""
        id_token = None
        if cookie is not None:
            try:
                id_token = open_identity(self.sealer, cookie).id_token
            except CookieInvalid:
                pass
        try:
            metadata = await self.discovery.metadata()
        except ProviderError as exc:
            log.warning("Logging out here only: the provider cannot be reached (%s)", exc)
            return None
        return flow.logout_url(
            metadata,
            client_id=self.settings.client_id,
            id_token=id_token,
            post_logout_redirect_uri=post_logout_redirect_uri,
        )

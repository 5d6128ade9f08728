"""`--oidc-issuer`: the sign-in endpoints and the `AuthPolicy` that makes every app need a sign-in.

`<prefix>/oidc/login?next=PATH` sends the browser to the provider (setting the flow cookie),
`<prefix>/oidc/callback` finishes the sign-in and returns to PATH, `<prefix>/oidc/logout` ends it
here and, when the provider supports it, there too. A refused sign-in answers a short page with
the reason and a link to try again, logs one warning line and counts an "oidc" error; a provider
that cannot be reached answers 502. `OidcSeam.identify` is the policy's user function: it reads
the session cookie of each request (page, autoload.js, metadata, static files, websocket),
refreshes a sign-in about to end and re-seals the cookie (except on a websocket upgrade, whose
refreshed sign-in lives in memory, see `oidc_watch`).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

from tornado import websocket

from aperture.identity.flow import (
    SESSION_COOKIE,
    SignInRefused,
    flow_cookie_name,
    safe_next,
    stale_flow_cookies,
)
from aperture.identity.relying_party import RelyingParty
from aperture.identity.signins import Identity
from aperture.identity.transport import ProviderError
from aperture.web.auth import AuthPolicy
from aperture.web.oidc_watch import SignInWatch
from aperture.web.requests import IDENTITY_ATTRIBUTE, RequestContext

log = logging.getLogger("aperture.identity")

LOGIN_PATH = "/oidc/login"
CALLBACK_PATH = "/oidc/callback"
LOGOUT_PATH = "/oidc/logout"


class OidcSeam:
    """What the handlers share: the relying party, the prefix, and how refusals are counted."""

    def __init__(self, rp: RelyingParty, prefix: str) -> None:
        self.rp = rp
        self.prefix = prefix
        self.on_refusal: Callable[[], None] | None = None  # the server counts an "oidc" error

    def policy(self) -> AuthPolicy:
        return AuthPolicy(
            get_identity_async=self.identify,
            login_url=LOGIN_PATH,
            login_handler=OidcLoginHandler,
            logout_url=LOGOUT_PATH,
            logout_handler=OidcLogoutHandler,
            extra_endpoints=((CALLBACK_PATH, OidcCallbackHandler),),
            handler_kwargs={"seam": self},
            watch_websocket=self.watch,
        )

    def cookie_options(self, handler: Any) -> dict[str, Any]:
        """HttpOnly, SameSite=Lax, under the prefix; Secure when the browser's side is https."""
        redirect = self.rp.settings.redirect_url or ""
        secure = handler.request.protocol == "https" or redirect.startswith("https://")
        return {"path": self.prefix or "/", "httponly": True, "samesite": "Lax", "secure": secure}

    def external_base(self, handler: Any) -> str:
        """scheme://host the browser uses: from --oidc-redirect-url, else from the request."""
        redirect = self.rp.settings.redirect_url
        if redirect:
            parts = urlsplit(redirect)
            return f"{parts.scheme}://{parts.netloc}"
        return f"{handler.request.protocol}://{handler.request.host}"

    def redirect_uri(self, handler: Any) -> str:
        return self.rp.settings.redirect_url or self.external_base(handler) + self.prefix + CALLBACK_PATH

    async def identify(self, handler: Any) -> Identity | None:
        """The request's signed-in identity (None: nobody), kept on the request for `incoming()`."""
        upgrade = isinstance(handler, websocket.WebSocketHandler)
        current = await self.rp.current(handler.get_cookie(SESSION_COOKIE), can_set_cookie=not upgrade)
        if current.problem is not None:
            log.info("OpenID Connect session cookie not accepted (%s): signing in again", current.problem)
        if not upgrade:
            options = self.cookie_options(handler)
            if current.clear_cookie:
                handler.clear_cookie(SESSION_COOKIE, **options)
            elif current.cookie_value is not None:
                handler.set_cookie(
                    SESSION_COOKIE, current.cookie_value, expires=current.cookie_expires_at, **options
                )
        setattr(handler.request, IDENTITY_ATTRIBUTE, current.identity)
        return current.identity

    def watch(self, handler: Any) -> Callable[[], None] | None:
        """Watch an open websocket's sign-in: refresh it in memory, close the socket when it ends."""
        identity = getattr(handler.request, IDENTITY_ATTRIBUTE, None)
        if not isinstance(identity, Identity):
            return None
        watch = SignInWatch(self.rp, identity, handler.sign_in_expired)
        return watch.stop

    def refused(self, reason: str) -> None:
        log.warning("OpenID Connect sign-in refused: %s", reason)
        if self.on_refusal is not None:
            self.on_refusal()


class OidcHandler(RequestContext):
    """Base of the sign-in endpoints: never cached, short pages instead of tracebacks."""

    def initialize(self, seam: OidcSeam) -> None:
        self.seam = seam

    def set_default_headers(self) -> None:
        self.set_header("Server", "Aperture")
        self.set_header("Cache-Control", "no-store")
        self.set_header("Referrer-Policy", "no-referrer")

    def refuse(self, status: int, reason: str, *, retry_next: str | None = None) -> None:
        """Answer a short page saying sign-in was refused and why, with a link to try again."""
        self.seam.refused(reason)
        prefix = self.seam.prefix
        again = prefix + LOGIN_PATH + "?" + urlencode({"next": retry_next or prefix + "/"})
        self.clear()
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(
            '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8"><title>Sign-in refused</title></head>\n'
            f"<body>\n<h1>Sign-in refused</h1>\n<p>{html.escape(reason[:300])}.</p>\n"
            f'<p><a href="{html.escape(again)}">Try signing in again</a></p>\n</body>\n</html>\n'
        )

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(
            f"<!DOCTYPE html>\n<html><body><h1>{status_code}: {html.escape(self._reason)}</h1></body></html>\n"
        )


class OidcLoginHandler(OidcHandler):
    """`GET <prefix>/oidc/login?next=PATH`: off to the provider."""

    async def get(self) -> None:
        raw = self.get_query_argument("next", None)
        next_path, acceptable = safe_next(raw, self.seam.prefix)
        if not acceptable:
            log.warning(
                "OpenID Connect sign-in: not returning to %r (not a path on this server); using %s",
                (raw or "")[:200],
                next_path,
            )
        options = self.seam.cookie_options(self)
        for name in stale_flow_cookies(_cookies(self)):
            self.clear_cookie(name, **options)
        try:
            start = await self.seam.rp.begin(next_path, self.seam.redirect_uri(self))
        except ProviderError as exc:
            self.refuse(502, f"the sign-in provider cannot be reached ({exc})", retry_next=next_path)
            return
        self.set_cookie(
            start.cookie_name, start.cookie_value, expires_days=None, max_age=start.max_age, **options
        )
        self.redirect(start.authorization_url)


class OidcCallbackHandler(OidcHandler):
    """`GET <prefix>/oidc/callback?code&state`: checks, then the session cookie and back to the page."""

    async def get(self) -> None:
        arguments = {
            name: value
            for name in ("code", "state", "error")
            if (value := self.get_query_argument(name, None)) is not None
        }
        options = self.seam.cookie_options(self)
        try:
            finished = await self.seam.rp.finish(arguments, _cookies(self), self.seam.redirect_uri(self))
        except SignInRefused as refusal:
            self._clear_flow(arguments.get("state"), options)
            self.refuse(refusal.status, refusal.reason)
            return
        self.clear_cookie(finished.flow_cookie, **options)
        self.set_cookie(SESSION_COOKIE, finished.cookie_value, expires=finished.expires_at, **options)
        log.info("OpenID Connect sign-in of %r", finished.identity.user)
        self.redirect(finished.next_path)

    def _clear_flow(self, state: str | None, options: dict[str, Any]) -> None:
        if state and flow_cookie_name(state) in self.request.cookies:
            self.clear_cookie(flow_cookie_name(state), **options)


class OidcLogoutHandler(OidcHandler):
    """`GET <prefix>/oidc/logout`: end the sign-in here, then at the provider when it can."""

    async def get(self) -> None:
        cookie = self.get_cookie(SESSION_COOKIE)
        self.clear_cookie(SESSION_COOKIE, **self.seam.cookie_options(self))
        home = self.seam.prefix + "/"
        target = await self.seam.rp.logout_redirect(cookie, self.seam.external_base(self) + home)
        self.redirect(target or home)


def _cookies(handler: Any) -> dict[str, str]:
    return {name: morsel.value for name, morsel in handler.request.cookies.items()}

"""Tornado requests to the core's `IncomingRequest`, and behaviour shared by handlers.

`AuthMixin` applies the auth module to any handler (HTTP or websocket):
`get_user_async` runs in `prepare`, `get_user` lazily through `current_user`, and
`require_user()` answers an anonymous request (redirect to login for GET/HEAD,
403 otherwise). With built-in sign-in the policy's `get_identity_async` gives an identity: its
`.user` is the current user, and the identity stays on the request (`IDENTITY_ATTRIBUTE`) so
`incoming()` hands the user and claims to the session the request creates. `ApertureHandler` adds short error pages without tracebacks.

`RequestContext` (a base of `AuthMixin`, so of every Aperture handler and the websocket) gives
each request an id (`handler.request_id`: the client's `X-Request-Id` when short and plain, else
a fresh one), echoes it in the `X-Request-Id` response header (error pages included), and binds
the app, request id and client address into the log context while the request is handled, so
every log line it causes carries them. A websocket's message handling runs in a copy of that
context, so its lines carry them too.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from tornado import web

from aperture.core import IncomingRequest, ServerCore
from aperture.operations import log_context
from aperture.pages import PageRenderer, error_page
from aperture.web.auth import AuthPolicy

log = logging.getLogger("aperture.server")

IDENTITY_ATTRIBUTE = "aperture_identity"
"""Where the auth policy leaves a request's signed-in identity (with `.user` and `.claims`)."""


def incoming(request: Any) -> IncomingRequest:
    """Arguments (lists of bytes), Title-Case headers (repeats joined by ','), cookies, source, and
    the signed-in user and claims when built-in sign-in identified one."""
    identity = getattr(request, IDENTITY_ATTRIBUTE, None)
    return IncomingRequest(
        arguments={k: list(v) for k, v in request.query_arguments.items()},
        headers=dict(request.headers),
        cookies={name: morsel.value for name, morsel in request.cookies.items()},
        source=request,
        user=identity.user if identity is not None else None,
        claims=dict(identity.claims) if identity is not None else {},
    )


class RequestContext(web.RequestHandler):
    """A request id for every request, and the log context bound while it is handled."""

    request_id: str
    log_app: str | None

    def __init__(self, application: web.Application, request: Any, **kwargs: Any) -> None:
        # Before Tornado's constructor, which calls clear() (where the header is set).
        self.request_id = log_context.request_id_from(request.headers.get("X-Request-Id"))
        self.log_app = kwargs.get("route")  # handlers of an app are given its route
        super().__init__(application, request, **kwargs)

    def clear(self) -> None:
        super().clear()  # also when an error page replaces the response: the id stays
        self.set_header("X-Request-Id", self.request_id)

    async def _execute(self, transforms: Any, *args: bytes, **kwargs: bytes) -> None:
        # Tornado runs each request's `_execute` as its own task, so what is bound here is seen by
        # everything the request does (and what it starts), and by nothing else.
        token = log_context.bind(app=self.log_app, request_id=self.request_id, client=self.request.remote_ip)
        try:
            await super()._execute(transforms, *args, **kwargs)
        finally:
            log_context.reset(token)


class AuthMixin(RequestContext):
    """Consult the auth module (if any) for the current user."""

    @property
    def auth(self) -> AuthPolicy:
        policy: AuthPolicy = self.settings["aperture_auth"]
        return policy

    async def prepare(self) -> None:
        if self.auth.get_user_async is not None:
            self.current_user = await self.auth.get_user_async(self)
        elif self.auth.get_identity_async is not None:
            identity = await self.auth.get_identity_async(self)
            self.current_user = identity.user if identity is not None else None

    def get_current_user(self) -> Any:
        if self.auth.get_user is not None:
            return self.auth.get_user(self)
        if self.auth.get_identity_async is not None:
            return None  # only `prepare` can say who signed in: a handler that skipped it has nobody
        return "default_user"

    def get_login_url(self) -> str:
        return self.auth.login_url_for(self, self.settings["aperture_prefix"])

    def authenticated(self) -> bool:
        return not self.auth.enabled or bool(self.current_user)

    def require_user(self) -> bool:
        """True when the request may proceed; otherwise it has been answered."""
        if self.authenticated():
            return True
        if self.request.method in ("GET", "HEAD"):
            self.redirect(self.auth.redirect_target(self, self.settings["aperture_prefix"]))
            return False
        raise web.HTTPError(403, reason="Authentication required")


class ApertureHandler(AuthMixin):
    """Base of Aperture's HTTP handlers: short error pages, tracebacks only with --dev."""

    core: ServerCore
    renderer: PageRenderer

    def initialize(self, core: ServerCore, renderer: PageRenderer, route: str = "/") -> None:
        self.core = core
        self.renderer = renderer
        self.route = route

    def set_default_headers(self) -> None:
        self.set_header("Server", "Aperture")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        reason = self._reason
        detail = None
        if self.settings.get("serve_traceback") and "exc_info" in kwargs:
            detail = "".join(traceback.format_exception(*kwargs["exc_info"]))
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(error_page(status_code, reason, reason, detail))

"""The contexts app code sees: `server_context`, `session_context` and its `request`.

`ServerContext` belongs to one app route; `SessionContext` to one session (it exists
before the session does, while hooks and app code build the document).
`RequestData` is what `session_context.request` answers: `arguments`, `cookies` and
`headers` captured when the session was created (from the token payload when it has
them, else from the live request), `user` and `claims` (who signed in with the built-in
OpenID Connect sign-in, and the claims the operator passes on; None and {} otherwise), and
any other attribute read from the request object that created the session.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from bokeh.application.application import ServerContext as BokehServerContext
from bokeh.application.application import SessionContext as BokehSessionContext
from bokeh.core.types import ID
from bokeh.document import Document

if TYPE_CHECKING:
    from aperture.sessions.registry import SessionRegistry
    from aperture.sessions.session import Session


class RequestData:
    """The request that created a session, as app code reads it."""

    def __init__(
        self,
        *,
        arguments: Mapping[str, list[bytes]],
        cookies: Mapping[str, str],
        headers: Mapping[str, str],
        source: Any = None,
        user: str | None = None,
        claims: Mapping[str, Any] | None = None,
    ) -> None:
        self.user = user
        self.claims = dict(claims or {})
        self.arguments = {k: list(v) for k, v in arguments.items() if k != "bokeh-session-id"}
        self.cookies = dict(cookies)
        headers = dict(headers)
        if "Cookie" not in headers and self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        self.headers = headers
        self._source = source

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or self._source is None:
            raise AttributeError(f"the session's request has no attribute {name!r}")
        return getattr(self._source, name)


class ServerContext(BokehServerContext):
    """Per-app, per-process context handed to `on_server_loaded` and friends."""

    def __init__(self, registry: SessionRegistry) -> None:
        self._registry = registry

    @property
    def application_context(self) -> SessionRegistry:
        return self._registry

    @property
    def sessions(self) -> list[Session]:  # type: ignore[override]
        return self._registry.live_sessions()


class SessionContext(BokehSessionContext):
    """What `curdoc().session_context` answers inside an app."""

    def __init__(
        self,
        server_context: ServerContext,
        session_id: str,
        document: Document,
        *,
        request: RequestData | None,
        token: str | None,
        token_payload: Mapping[str, Any],
        logout_url: str | None = None,
    ) -> None:
        super().__init__(server_context, ID(session_id))
        self._document = document
        self._request = request
        self._token = token
        self._token_payload = dict(token_payload)
        self._session: Session | None = None
        self._destroyed = False
        self.logout_url = logout_url

    @property
    def destroyed(self) -> bool:
        return self._destroyed

    @property
    def request(self) -> RequestData | None:
        return self._request

    @property
    def token(self) -> str | None:
        return self._token

    @property
    def token_payload(self) -> dict[str, Any]:
        return self._token_payload

    @property
    def document(self) -> Document:
        return self._document

    @property
    def session(self) -> Session | None:
        return self._session

    def attach(self, session: Session) -> None:
        self._session = session

    def detach(self) -> None:
        """Forget the released session (the two refer to each other)."""
        self._session = None

    def mark_destroyed(self) -> None:
        self._destroyed = True

    async def with_locked_document(self, func: Callable[[Document], Awaitable[None] | None]) -> Any:
        """Run `func(document)` with the document lock held (directly if no session yet)."""
        if self._destroyed:
            return None  # refused, like any locked work on a destroyed session
        if self._session is None:
            result = func(self._document)
            return await result if isinstance(result, Awaitable) else result
        return await self._session.run_locked(func, self._document)

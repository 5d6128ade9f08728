"""The auth-module contract of `bokeh serve`, as an `AuthPolicy` the handlers consult.

`--auth-module PATH` (or `BOKEH_AUTH_MODULE`) names a Python file that may define
`get_user(handler)` or `async get_user_async(handler)`, `login_url` (plus an optional
`LoginHandler`) or `get_login_url(handler)`, and `logout_url` (plus an optional
`LogoutHandler`). The file is executed once at start-up and validated with the
reference's rules and messages. Every endpoint that exposes an app consults the
policy: the page, `autoload.js`, `metadata`, the websocket and the app's own
`static/` files (which the reference leaves open).

Aperture's built-in sign-in (`--oidc-issuer`, see `oidc_handlers`) uses the same policy with three
extra fields: `get_identity_async` (an identity with `.user` and `.claims`, which apps then read
from `session_context.request`), `extra_endpoints` and `handler_kwargs` for its own handlers, and
`watch_websocket` (called for each websocket opened, returning a function that stops watching).
"""

from __future__ import annotations

import importlib.util
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

from tornado.web import RequestHandler

from aperture.errors import ConfigError


def _is_handler(value: Any) -> bool:
    return value is None or (isinstance(value, type) and issubclass(value, RequestHandler))


def _absolute(url: str) -> bool:
    return url.startswith(("http://", "https://", "//"))


@dataclass(frozen=True)
class AuthPolicy:
    """Who may see the apps; `enabled` is False when no user function is given."""

    get_user: Any = None
    get_user_async: Any = None
    login_url: str | None = None
    get_login_url: Any = None
    login_handler: type[RequestHandler] | None = None
    logout_url: str | None = None
    logout_handler: type[RequestHandler] | None = None
    get_identity_async: Any = None
    extra_endpoints: tuple[tuple[str, type[RequestHandler]], ...] = ()
    handler_kwargs: Mapping[str, Any] = field(default_factory=dict)
    watch_websocket: Any = None

    @property
    def enabled(self) -> bool:
        return (
            self.get_user is not None
            or self.get_user_async is not None
            or self.get_identity_async is not None
        )

    def validate(self) -> AuthPolicy:
        if self.get_user and self.get_user_async:
            raise ConfigError("--auth-module: only one of get_user or get_user_async should be supplied")
        if self.enabled and not (self.login_url or self.get_login_url):
            raise ConfigError(
                "--auth-module: when user authentication is enabled, one of login_url or get_login_url must be supplied"
            )
        if self.login_url and self.get_login_url:
            raise ConfigError("--auth-module: at most one of login_url or get_login_url should be supplied")
        if self.login_handler and self.get_login_url:
            raise ConfigError("--auth-module: LoginHandler cannot be used with a get_login_url() function")
        if not _is_handler(self.login_handler):
            raise ConfigError("--auth-module: LoginHandler must be a Tornado RequestHandler")
        if self.login_url and _absolute(self.login_url):
            raise ConfigError("--auth-module: LoginHandler can only be used with a relative login_url")
        if not _is_handler(self.logout_handler):
            raise ConfigError("--auth-module: LogoutHandler must be a Tornado RequestHandler")
        if self.logout_url and _absolute(self.logout_url):
            raise ConfigError("--auth-module: LogoutHandler can only be used with a relative logout_url")
        return self

    def endpoints(self, prefix: str) -> list[tuple[str, type[RequestHandler], dict[str, Any]]]:
        """The policy's own handlers, with the arguments each is initialized with."""
        found = []
        if self.login_url and self.login_handler:
            found.append((prefix + self.login_url, self.login_handler))
        if self.logout_url and self.logout_handler:
            found.append((prefix + self.logout_url, self.logout_handler))
        found += [(prefix + path, handler) for path, handler in self.extra_endpoints]
        return [(path, handler, dict(self.handler_kwargs)) for path, handler in found]

    def logout_url_for(self, prefix: str) -> str | None:
        return urljoin(prefix + "/", self.logout_url.lstrip("/")) if self.logout_url else None

    def login_url_for(self, handler: RequestHandler, prefix: str) -> str:
        if self.get_login_url is not None:
            return str(self.get_login_url(handler))
        if self.login_url is not None:
            return urljoin(prefix + "/", self.login_url.lstrip("/"))
        raise RuntimeError(
            "login_url or get_login_url() must be supplied when authentication hooks are enabled"
        )

    def redirect_target(self, handler: RequestHandler, prefix: str) -> str:
        """The login URL with `?next=` the way Tornado's `@authenticated` builds it."""
        url = self.login_url_for(handler, prefix)
        if "?" in url:
            return url
        nxt = handler.request.full_url() if urlsplit(url).scheme else handler.request.uri
        return url + "?" + urlencode({"next": nxt})


NO_AUTH = AuthPolicy()


def load_auth_module(path: str) -> AuthPolicy:
    """Execute the auth module file and build a validated policy from its attributes."""
    if not os.path.exists(path):
        raise ConfigError(f"--auth-module / BOKEH_AUTH_MODULE: no file exists at {path!r}")
    spec = importlib.util.spec_from_file_location(f"aperture_auth_{uuid.uuid4().hex}", path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"--auth-module / BOKEH_AUTH_MODULE: cannot load {path!r}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ConfigError(f"--auth-module: {path} raised {type(exc).__name__}: {exc}") from None
    policy = AuthPolicy(
        get_user=getattr(module, "get_user", None),
        get_user_async=getattr(module, "get_user_async", None),
        login_url=getattr(module, "login_url", None),
        get_login_url=getattr(module, "get_login_url", None),
        login_handler=getattr(module, "LoginHandler", None),
        logout_url=getattr(module, "logout_url", None),
        logout_handler=getattr(module, "LogoutHandler", None),
    )
    return policy.validate()

"""`P/admin` (`--admin`): the admin page, the JSON it polls (`P/admin/state`) and its script and
style (`P/admin/admin.js`, `P/admin/admin.css`, separate files so a strict Content-Security-Policy
holds: the page runs no inline code and renders every value as text).

Who may see them (every path under `P/admin`, GET and HEAD only):

* an auth module and `--admin-users`: a signed-in user named there; anonymous visitors get the
  auth module's login redirect, other users a 403 page;
* otherwise: requests whose TCP peer (the socket's own address, never `X-Real-Ip` or
  `X-Forwarded-For`, which `--use-xheaders` would believe) is a loopback address and that carry
  no proxy header (`X-Forwarded-*`, `X-Real-Ip`, `Forwarded`, `Via`, ...): a proxy on the same
  machine makes every visitor look local. Unix-socket connections are refused. With an auth
  module (but no `--admin-users`) the visitor must also be signed in.

Everything else gets a 403 page that says how to allow access.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tornado import template

from aperture.core import ServerCore
from aperture.operations.admin import AdminObserver
from aperture.pages import error_page
from aperture.web.requests import AuthMixin

TEMPLATES = Path(__file__).parent / "templates"
ASSETS = {"admin.js": "application/javascript; charset=UTF-8", "admin.css": "text/css; charset=UTF-8"}
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PROXY_HEADERS = frozenset(
    {
        "x-real-ip",
        "forwarded",
        "via",
        "x-client-ip",
        "true-client-ip",
        "cf-connecting-ip",
        "x-original-forwarded-for",
    }
)
HOW_TO_ALLOW = (
    "The admin page answers requests made on this machine that no proxy forwarded (e.g. "
    "curl http://127.0.0.1:PORT{prefix}/admin), or, with --auth-module, the users named by "
    "--admin-users."
)

Rule = tuple[str, Any, dict[str, Any]]


def loopback(address: str | None) -> bool:
    """True for an IPv4 or IPv6 loopback address (127.0.0.0/8, ::1, ::ffff:127.x.y.z)."""
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def forwarded(header_names: Iterable[str]) -> bool:
    """True when a header shows a proxy passed the request on."""
    return any(n.lower() in PROXY_HEADERS or n.lower().startswith("x-forwarded-") for n in header_names)


def local_request(peer: str | None, header_names: Iterable[str]) -> bool:
    """The rule without `--admin-users`: a loopback TCP peer, and no proxy header."""
    return loopback(peer) and not forwarded(header_names)


def socket_peer(request: Any) -> str | None:
    """The IP address the connection really comes from (None for Unix sockets or if unknown)."""
    sock = getattr(getattr(request.connection, "stream", None), "socket", None)
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    try:
        return str(sock.getpeername()[0])
    except OSError:
        return None


def user_name(user: Any) -> str | None:
    """How `--admin-users` names the user `get_user` returned (bytes from secure cookies decoded)."""
    if user is None or user == "":
        return None
    if isinstance(user, bytes):
        return user.decode("utf-8", "replace")
    return str(user)


class AdminHandler(AuthMixin):
    """Base of the admin endpoints: the access rule, no caching, no framing, a strict CSP."""

    SUPPORTED_METHODS = ("GET", "HEAD")

    def initialize(self, core: ServerCore, admin: AdminObserver) -> None:
        self.core = core
        self.admin = admin

    def set_default_headers(self) -> None:
        self.set_header("Server", "Aperture")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.set_header("Referrer-Policy", "no-referrer")

    async def prepare(self) -> None:
        await super().prepare()
        users = self.core.config.admin_users
        if self.auth.enabled:
            if not self.require_user():
                return
            if users:
                if user_name(self.current_user) not in users:
                    self.refuse(
                        "Your user is not allowed to see the admin page: ask for it to be added to --admin-users."
                    )
                return
        if not local_request(socket_peer(self.request), self.request.headers.keys()):
            self.refuse(HOW_TO_ALLOW.format(prefix=self.core.config.prefix))

    def refuse(self, why: str) -> None:
        self.set_status(403, "Forbidden")
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(error_page(403, "Forbidden", why))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(error_page(status_code, self._reason, self._reason))

    def head(self, *args: Any) -> None:
        self.get(*args)

    def get(self, *args: Any) -> None:
        raise NotImplementedError


class AdminPageHandler(AdminHandler):
    """`GET P/admin`: the page; its script fills it from `P/admin/state`."""

    def initialize(
        self, core: ServerCore, admin: AdminObserver, page: template.Template | None = None
    ) -> None:
        super().initialize(core, admin)
        self.page = page

    def get(self, *args: Any) -> None:
        assert self.page is not None
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(self.page.generate(prefix=self.core.config.prefix))


class AdminStateHandler(AdminHandler):
    """`GET P/admin/state`: what the page shows, as JSON (see `AdminObserver.state`)."""

    def get(self, *args: Any) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(self.admin.state(), ensure_ascii=True))


class AdminAssetHandler(AdminHandler):
    """`GET P/admin/admin.js` and `admin.css`, read once at start-up."""

    def initialize(
        self, core: ServerCore, admin: AdminObserver, assets: Mapping[str, bytes] | None = None
    ) -> None:
        super().initialize(core, admin)
        self.assets = assets or {}

    def get(self, *args: Any) -> None:
        name = args[0] if args else ""
        self.set_header("Content-Type", ASSETS[name])
        self.finish(self.assets[name])


def _observer(core: ServerCore) -> AdminObserver:
    for observer in core.observer:
        if isinstance(observer, AdminObserver):
            return observer
    raise RuntimeError("--admin: the admin observer was not attached (aperture.operations.plugins.attach)")


def admin_rules(core: ServerCore, prefix_re: str) -> list[Rule]:
    """The admin routes under `prefix_re` (a regex-escaped prefix)."""
    admin = _observer(core)
    page = template.Template(
        (TEMPLATES / "admin.html").read_text("utf-8"), name="admin.html", autoescape="xhtml_escape"
    )
    assets = {name: (TEMPLATES / name).read_bytes() for name in ASSETS}
    common = {"core": core, "admin": admin}
    base = prefix_re + "/admin"
    return [
        (base, AdminPageHandler, {**common, "page": page}),
        (base + "/state", AdminStateHandler, common),
        (base + r"/(admin\.js|admin\.css)", AdminAssetHandler, {**common, "assets": assets}),
    ]

"""`FrontEnd`: listening sockets, the Tornado application and HTTP server, keep-alive.

Everything a `Server` needs from Tornado, behind four calls: `bind`, `start`,
`close_websockets` and `stop`. Binding is separate so a caller can learn the real
port (for `--port 0`) before anything is served.
"""

from __future__ import annotations

import errno
import socket

import tornado
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from aperture.core import ServerCore
from aperture.errors import CLOSE_GOING_AWAY, ConfigError
from aperture.pages import PageRenderer, favicon_path
from aperture.web.auth import AuthPolicy
from aperture.web.routes import build_application
from aperture.web.websocket import KeepAlive

TORNADO_VERSION = tornado.version


def bind(port: int, address: str | None) -> list[socket.socket]:
    """Listening sockets (IPv4 and IPv6 when no address is given); ConfigError on failure."""
    try:
        return bind_sockets(port, address or None)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"--port: port {port} is already in use") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ConfigError(f"--address: address {address!r} is not available") from None
        raise ConfigError(f"cannot listen on {address or '*'}:{port}: {exc.strerror}") from None


class FrontEnd:
    """The HTTP and websocket side of one server process."""

    def __init__(self, core: ServerCore, sockets: list[socket.socket], port: int, auth: AuthPolicy) -> None:
        self.core = core
        self.auth = auth
        self.sockets = sockets
        self.port = port
        self.keepalive = KeepAlive(core.config.keep_alive)
        self._http: HTTPServer | None = None

    def start(self, renderer: PageRenderer) -> None:
        cfg = self.core.config
        icon_file = favicon_path(cfg.ico_path)
        icon = icon_file.read_bytes() if icon_file is not None else None
        app = build_application(
            self.core,
            renderer,
            self.keepalive,
            icon=icon,
            origins=cfg.origin_allowlist(self.port),
            auth=self.auth,
        )
        self._http = HTTPServer(app, xheaders=cfg.use_xheaders)
        self._http.add_sockets(self.sockets)
        self.keepalive.start()

    def stop_listening(self) -> None:
        if self._http is not None:
            self._http.stop()
        self.keepalive.stop()

    def close_websockets(self, reason: str = "server shutting down") -> None:
        for sock in list(self.keepalive.sockets):
            sock.close(CLOSE_GOING_AWAY, reason)

    async def close_connections(self) -> None:
        if self._http is not None:
            await self._http.close_all_connections()
            self._http = None

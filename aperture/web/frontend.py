"""`FrontEnd`: listening sockets (TCP, Unix, TLS), the Tornado application, keep-alive.

Everything a `Server` needs from Tornado, behind a few calls. Binding is separate
from serving so a caller can learn the real port (for `--port 0`) or fork worker
processes that share the sockets before anything is served.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import ssl
import stat
import time
from typing import Any

import tornado
from tornado.httpserver import HTTPServer
from tornado.ioloop import PeriodicCallback
from tornado.iostream import IOStream
from tornado.netutil import bind_sockets, bind_unix_socket

from aperture.config import Config
from aperture.core import ServerCore
from aperture.errors import CLOSE_GOING_AWAY, ConfigError
from aperture.pages import PageRenderer, favicon_path
from aperture.web.auth import AuthPolicy
from aperture.web.listener import paced, shared_listener
from aperture.web.routes import build_application
from aperture.web.websocket import KeepAlive

TORNADO_VERSION = tornado.version


def bind(config: Config) -> list[socket.socket]:
    """Listening sockets for the configuration; ConfigError (naming the flag) on failure."""
    if config.unix_socket:
        return [_bind_unix(config.unix_socket)]
    port, address = config.port, config.address
    try:
        return bind_sockets(port, address or None)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"--port: port {port} is already in use") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ConfigError(f"--address: address {address!r} is not available") from None
        raise ConfigError(f"cannot listen on {address or '*'}:{port}: {exc.strerror}") from None


def bind_worker_socket(path: str) -> socket.socket:
    """A worker's private Unix socket (mode 0600) for relays from its siblings; replaces a stale one
    (left by the previous process of the same worker number)."""
    return bind_unix_socket(path, mode=0o600)


def _bind_unix(path: str) -> socket.socket:
    if os.path.exists(path) and not stat.S_ISSOCK(os.stat(path).st_mode):
        raise ConfigError(f"--unix-socket: {path} exists and is not a socket")
    try:
        return bind_unix_socket(path, mode=0o600)
    except OSError as exc:
        raise ConfigError(f"--unix-socket: cannot listen on {path}: {exc.strerror}") from None


def tls_context(config: Config) -> ssl.SSLContext | None:
    """The server TLS context for --ssl-certfile/--ssl-keyfile (never prompts for a password)."""
    if not config.ssl_certfile:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    password = config.ssl_password
    try:
        context.load_cert_chain(config.ssl_certfile, config.ssl_keyfile, password=lambda: password or "")
    except FileNotFoundError as exc:
        raise ConfigError(f"--ssl-certfile / --ssl-keyfile: no such file {exc.filename}") from None
    except ssl.SSLError as exc:
        hint = "" if password else " (if the key is encrypted, set BOKEH_SSL_PASSWORD)"
        raise ConfigError(
            f"--ssl-certfile / --ssl-keyfile: cannot load the certificate or key: {exc.reason or exc.strerror or exc}{hint}"
        ) from None
    return context


class CountingHTTPServer(HTTPServer):
    """Tornado's HTTP server, counting its open connections (a websocket's ends with its upgrade)."""

    open_connections = 0

    def handle_stream(self, stream: IOStream, address: tuple[Any, ...]) -> None:
        self.open_connections += 1
        super().handle_stream(stream, address)

    def on_close(self, server_conn: object) -> None:
        self.open_connections -= 1
        super().on_close(server_conn)


def _is_unix_path(sock: socket.socket, path: str) -> bool:
    try:
        return sock.family == socket.AF_UNIX and sock.getsockname() == path
    except OSError:
        return False


class FrontEnd:
    """The HTTP and websocket side of one server process."""

    def __init__(
        self,
        core: ServerCore,
        sockets: list[socket.socket],
        port: int | None,
        auth: AuthPolicy,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.core = core
        self.tls = tls
        self.auth = auth
        self.sockets = sockets
        self.port = port
        self.keepalive = KeepAlive(core.config.keep_alive)
        self._http: CountingHTTPServer | None = None
        self._publisher: PeriodicCallback | None = None  # this worker's load, for its siblings

    def start(self, renderer: PageRenderer) -> None:
        cfg = self.core.config
        icon_file = favicon_path(cfg.ico_path)
        icon = icon_file.read_bytes() if icon_file is not None else None
        app = build_application(
            self.core,
            renderer,
            self.keepalive,
            icon=icon,
            origins=cfg.origin_allowlist(self.port or 0),
            auth=self.auth,
        )
        # idle_connection_timeout bounds the wait for a request's headers (also between keep-alive
        # requests), so a client trickling header lines cannot hold a connection for Tornado's hour.
        self._http = CountingHTTPServer(
            app, xheaders=cfg.use_xheaders, ssl_options=self.tls, idle_connection_timeout=cfg.header_timeout
        )
        self._http.add_sockets(self._listeners())
        self.keepalive.start()
        self.core.on_session_moved = self._close_session_websockets

    def _listeners(self) -> list[socket.socket]:
        """The sockets for `HTTPServer.add_sockets`: paced, and those shared with sibling workers
        spread over them (`aperture.worker_loads`); a worker's private relay socket is not shared."""
        workers = self.core.peers.workers
        if workers is None or workers.loads is None:
            return paced(self.sockets)
        loads, number = workers.loads, workers.number
        private = workers.socket_path(number)

        def over_share() -> bool:
            load = self.connections()
            loads.publish(number, load)
            return loads.over_share(number, load)

        loads.publish(number, 0)
        self._publisher = PeriodicCallback(lambda: loads.publish(number, self.connections()), 100)
        self._publisher.start()
        return [
            paced([sock])[0] if _is_unix_path(sock, private) else shared_listener(sock, over_share)
            for sock in self.sockets
        ]

    def connections(self) -> int:
        """Open HTTP connections and websockets of this process."""
        http = self._http.open_connections if self._http is not None else 0
        return http + len(self.keepalive.sockets)

    def stop_listening(self) -> None:
        """Close the listening sockets; connections already open stay."""
        if self._publisher is not None:
            self._publisher.stop()
            self._publisher = None
            workers = self.core.peers.workers
            if workers is not None and workers.loads is not None:
                workers.loads.withdraw(workers.number)
        if self._http is not None:
            self._http.stop()

    async def close_websockets(self, deadline: float, reason: str = "server shutting down") -> None:
        """Close every websocket with 1001 and wait, until `deadline` (time.monotonic) at most, for
        the close handshakes. One that opens meanwhile (its upgrade was under way) is closed too."""
        self.keepalive.stop()
        closing: set[object] = set()
        while True:
            for sock in list(self.keepalive.sockets):
                if sock not in closing:
                    closing.add(sock)
                    sock.close(CLOSE_GOING_AWAY, reason)
            if not self.keepalive.sockets or time.monotonic() >= deadline:
                return
            await asyncio.sleep(0.05)

    def _close_session_websockets(self, session: Any) -> None:
        """Close the websockets of a session another process took over; they reconnect to it."""
        for sock in list(self.keepalive.sockets):
            connection = sock.connection
            if connection is not None and connection.session is session:
                sock.close(CLOSE_GOING_AWAY, "session moved to another process")

    @property
    def open_websockets(self) -> int:
        return len(self.keepalive.sockets)

    async def close_connections(self, timeout: float | None = None) -> None:
        """Close the remaining HTTP connections (idle keep-alive ones, requests still answering)."""
        if self._http is not None:
            http, self._http = self._http, None
            try:
                await asyncio.wait_for(http.close_all_connections(), timeout)
            except TimeoutError:
                pass  # the process is exiting; what is left is closed with it

"""`Server`: run Aperture from Python, on your own asyncio loop or in a thread.

    server = Server({"/app": make_doc}, port=5006, allow_websocket_origin=["localhost:8000"])
    await server.start()          # inside your asyncio program; returns once listening
    ...
    await server.stop()

or, blocking (e.g. as the target of a `threading.Thread`): `server.run()`, ended
by SIGINT/SIGTERM (main thread only) or by `server.shutdown()` from any thread.
Options are the `aperture serve` flags with underscores (`port`, `prefix`,
`allow_websocket_origin`, `unused_session_lifetime`, ...); `BOKEH_*` variables
apply as they do for the command line.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import socket
from collections.abc import Mapping
from typing import Any

import bokeh
import tornado
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from aperture import __version__
from aperture.apps import curdoc
from aperture.apps.loading import AppSpec, applications_for_objects
from aperture.config import Config, resolve
from aperture.core import ServerCore
from aperture.errors import CLOSE_GOING_AWAY, ConfigError
from aperture.pages import PageRenderer, favicon_path
from aperture.sessions.session import Session
from aperture.web.routes import build_application
from aperture.web.websocket import KeepAlive

log = logging.getLogger("aperture.server")


class Server:
    """An Aperture server for a set of Bokeh applications."""

    def __init__(
        self,
        applications: Mapping[str, AppSpec] | AppSpec | None = None,
        *,
        config: Config | None = None,
        **options: Any,
    ) -> None:
        self.config = config if config is not None else resolve(options)
        if applications is None:
            raise ConfigError("Server needs at least one application")
        self._applications = applications_for_objects(applications)
        self.core = ServerCore(self.config, self._applications)
        self._sockets: list[socket.socket] = []
        self._http: HTTPServer | None = None
        self._keepalive = KeepAlive(self.config.keep_alive)
        self._stopped: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.port: int | None = None

    @property
    def prefix(self) -> str:
        return self.config.prefix

    @property
    def address(self) -> str | None:
        return self.config.address

    def app_urls(self) -> list[str]:
        host = self.config.address or "localhost"
        return [f"http://{host}:{self.port}{self.prefix}{route}" for route in sorted(self.core.apps)]

    def get_sessions(self, app_path: str) -> list[Session]:
        return self.core.apps[app_path].live_sessions()

    def bind(self) -> None:
        """Open the listening sockets (before start, e.g. to learn a free port early)."""
        if self._sockets:
            return
        cfg = self.config
        try:
            self._sockets = bind_sockets(cfg.port, cfg.address or None)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(f"--port: port {cfg.port} is already in use") from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise ConfigError(f"--address: address {cfg.address!r} is not available") from None
            raise ConfigError(f"cannot listen on {cfg.address or '*'}:{cfg.port}: {exc.strerror}") from None
        self.port = self._sockets[0].getsockname()[1]

    async def start(self) -> None:
        """Listen and run the apps' `on_server_loaded` hooks; returns once serving."""
        curdoc.install()
        self.bind()
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        cfg = self.config
        renderer = PageRenderer(
            prefix=cfg.prefix,
            mode=os.environ.get("BOKEH_RESOURCES", "server-dev" if cfg.bokeh_dev else "server"),
            minified=cfg.minified,
            js_log_level=cfg.js_log_level,
            dev=cfg.bokeh_dev,
        )
        icon_file = favicon_path(cfg.ico_path)
        icon = icon_file.read_bytes() if icon_file is not None else None
        assert self.port is not None
        app = build_application(
            self.core,
            renderer,
            self._keepalive,
            icon=icon,
            origins=cfg.origin_allowlist(self.port),
        )
        self._http = HTTPServer(app, xheaders=cfg.use_xheaders)
        self._http.add_sockets(self._sockets)
        self._keepalive.start()
        await self.core.start()
        log.debug("Serving %s", ", ".join(sorted(self.core.apps)))

    async def stop(self) -> None:
        """Stop listening, close websockets (1001), destroy sessions, run unload hooks."""
        if self._http is not None:
            self._http.stop()
        self._keepalive.stop()
        for sock in list(self._keepalive.sockets):
            sock.close(CLOSE_GOING_AWAY, "server shutting down")
        await self.core.stop(destroy_sessions=True)
        if self._http is not None:
            await self._http.close_all_connections()
            self._http = None
        self._sockets = []
        if self._stopped is not None:
            self._stopped.set()

    def shutdown(self) -> None:
        """Ask a running `run()` to stop; safe to call from any thread."""
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)

    async def serve(self, install_signal_handlers: bool = True) -> None:
        await self.start()
        assert self._stopped is not None
        loop = asyncio.get_running_loop()
        if install_signal_handlers:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self._on_signal, sig)
        await self._stopped.wait()
        await self.stop()

    def _on_signal(self, sig: int) -> None:
        log.info("Received %s, shutting down", signal.Signals(sig).name)
        if self._stopped is not None:
            self._stopped.set()

    def run(self, install_signal_handlers: bool | None = None) -> None:
        """Serve until a signal or `shutdown()`; blocks the calling thread."""
        import threading

        if install_signal_handlers is None:
            install_signal_handlers = threading.current_thread() is threading.main_thread()
        asyncio.run(self.serve(install_signal_handlers))


def versions() -> str:
    return f"Aperture {__version__} (Bokeh {bokeh.__version__}, Tornado {tornado.version})"

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
import logging
import signal
import socket
import ssl
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import bokeh

from aperture import __version__
from aperture.apps import curdoc
from aperture.apps.loading import AppSpec, applications_for_objects
from aperture.config import Config, resolve
from aperture.core import ServerCore
from aperture.errors import ConfigError
from aperture.pages import PageRenderer
from aperture.sessions.session import Session
from aperture.web.auth import NO_AUTH, load_auth_module
from aperture.web.frontend import TORNADO_VERSION, FrontEnd, bind, bind_private, tls_context

log = logging.getLogger("aperture.server")


class Server:
    """An Aperture server for a set of Bokeh applications."""

    def __init__(
        self,
        applications: Mapping[str, AppSpec] | AppSpec | None = None,
        *,
        config: Config | None = None,
        sockets: list[socket.socket] | None = None,
        **options: Any,
    ) -> None:
        self.config = config if config is not None else resolve(options)
        if applications is None:
            raise ConfigError("Server needs at least one application")
        self._applications = applications_for_objects(applications)
        self.auth = load_auth_module(self.config.auth_module) if self.config.auth_module else NO_AUTH
        logout_url = self.auth.logout_url_for(self.config.prefix)
        self.core = ServerCore(self.config, self._applications, logout_url=logout_url)
        self._sockets: list[socket.socket] = list(sockets or [])
        self._front: FrontEnd | None = None
        self._tls: ssl.SSLContext | None = None
        self._stopped: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.port: int | None = None
        if self._sockets:
            self._learn_port()

    @property
    def prefix(self) -> str:
        return self.config.prefix

    @property
    def address(self) -> str | None:
        return self.config.address

    def app_urls(self) -> list[str]:
        cfg = self.config
        if cfg.unix_socket:
            base = "http+unix://" + quote(cfg.unix_socket, safe="")
        else:
            scheme = "https" if cfg.ssl_certfile else "http"
            base = f"{scheme}://{cfg.address or 'localhost'}:{self.port}"
        return [f"{base}{self.prefix}{route}" for route in sorted(self.core.apps)]

    def get_sessions(self, app_path: str) -> list[Session]:
        return self.core.apps[app_path].live_sessions()

    def bind(self) -> list[socket.socket]:
        """Open the listening sockets (before start, e.g. to learn a free port early)."""
        if self._tls is None and self.config.ssl_certfile:
            self._tls = tls_context(self.config)  # fails here, before serving, on a bad key
        if not self._sockets:
            self._sockets = bind(self.config)
            self._learn_port()
        return self._sockets

    def _owner_address(self) -> str | None:
        """Where sibling processes can reach this one to relay a websocket (see web/relay.py)."""
        cfg = self.config
        if cfg.num_procs > 1:  # a worker: the shared socket reaches any worker, so add a private one
            private = bind_private()
            self._sockets.append(private)
            return f"127.0.0.1:{private.getsockname()[1]}"
        if cfg.advertise_address:
            return cfg.advertise_address
        if cfg.unix_socket or self.port is None:
            return None
        host = cfg.address if cfg.address not in (None, "", "0.0.0.0", "::", "localhost") else "127.0.0.1"
        return f"[{host}]:{self.port}" if host and ":" in host else f"{host}:{self.port}"

    def _learn_port(self) -> None:
        name = self._sockets[0].getsockname()
        self.port = name[1] if isinstance(name, tuple) else None

    async def start(self) -> None:
        """Listen and run the apps' `on_server_loaded` hooks; returns once serving."""
        curdoc.install()
        self.bind()
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        cfg = self.config
        renderer = PageRenderer(
            prefix=cfg.prefix,
            mode=cfg.resources_mode,
            minified=cfg.minified,
            js_log_level=cfg.js_log_level,
            dev=cfg.bokeh_dev,
        )
        self.core.owner_address = self._owner_address()
        self._front = FrontEnd(self.core, self._sockets, self.port, self.auth, self._tls)
        self._front.start(renderer)
        await self.core.start()
        log.debug("Serving %s", ", ".join(sorted(self.core.apps)))

    async def stop(self) -> None:
        """Shut down gracefully within `--shutdown-timeout` seconds.

        Order: `/readyz` turns 503 and no new session is accepted; messages and callbacks
        in flight finish; the listening sockets close; websockets close with 1001; every
        session is destroyed (`on_session_destroyed` runs); `on_server_unloaded` runs.
        """
        if self.core.draining:
            return  # already stopping (or stopped)
        self.core.draining = True
        try:
            await asyncio.wait_for(self._drain(), self.config.shutdown_timeout)
        except TimeoutError:
            log.warning("Shutdown took longer than %d s; stopping anyway", self.config.shutdown_timeout)
        if self._front is not None:
            await self._front.close_connections()
            self._front = None
        self._sockets = []
        if self._stopped is not None:
            self._stopped.set()

    async def _drain(self) -> None:
        front = self._front
        while self.core.busy_sessions():  # still listening: /readyz says 503, new sessions get 503
            await asyncio.sleep(0.05)
        if front is not None:
            front.stop_listening()
            front.close_websockets()
            for _ in range(40):  # let the close handshakes go out
                if not front.open_websockets:
                    break
                await asyncio.sleep(0.05)
        await self.core.stop(destroy_sessions=True)

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
        for url in self.app_urls():
            log.info("Bokeh app running at: %s", url)  # the line scripts wait for: now ready
        await self._stopped.wait()
        started = time.monotonic()
        await self.stop()  # a no-op when stop() itself ended the wait
        log.info("Stopped in %.2f s", time.monotonic() - started)

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
    return f"Aperture {__version__} (Bokeh {bokeh.__version__}, Tornado {TORNADO_VERSION})"

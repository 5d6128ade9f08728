"""`Server`: run Aperture from Python, on your own asyncio loop or in a thread.

    server = Server({"/app": make_doc}, port=5006, allow_websocket_origin=["localhost:8000"])
    await server.start()          # inside your asyncio program; returns once listening
    ...
    await server.stop()

or, blocking (e.g. as the target of a `threading.Thread`): `server.run()`, ended
by SIGTERM/SIGHUP/SIGINT (main thread only) or by `server.shutdown()` from any thread.
Options are the `aperture serve` flags with underscores (`port`, `prefix`,
`allow_websocket_origin`, `unused_session_lifetime`, ...); `BOKEH_*` variables
apply as they do for the command line.
"""

from __future__ import annotations

import asyncio
import functools
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
from aperture.accelerate import activation
from aperture.apps import curdoc, model_ids
from aperture.apps.loading import AppSpec, applications_for_objects
from aperture.config import Config, resolve
from aperture.core import ServerCore
from aperture.errors import ConfigError
from aperture.identity.cookies import deployment_secret
from aperture.identity.relying_party import RelyingParty
from aperture.operations import plugins, startup
from aperture.pages import PageRenderer
from aperture.peers import Peers, WorkerGroup
from aperture.sessions.session import Session
from aperture.shutdown import Deadlines, SignalCatcher
from aperture.store.keeper import StoreKeeper
from aperture.store.redis_store import RedisStore
from aperture.watchdog import Watchdog, exit_abandoned
from aperture.web.auth import NO_AUTH, load_auth_module
from aperture.web.frontend import TORNADO_VERSION, FrontEnd, bind, bind_worker_socket, tls_context
from aperture.web.oidc_handlers import OidcSeam
from aperture.web.oidc_transport import TornadoTransport

log = logging.getLogger("aperture.server")

WEBSOCKET_CLOSE_WAIT = 1.0  # seconds for the 1001 close handshakes before sessions are destroyed


class Server:
    """An Aperture server for a set of Bokeh applications."""

    def __init__(
        self,
        applications: Mapping[str, AppSpec] | AppSpec | None = None,
        *,
        config: Config | None = None,
        sockets: list[socket.socket] | None = None,
        workers: WorkerGroup | None = None,
        **options: Any,
    ) -> None:
        self.config = config if config is not None else resolve(options)
        if applications is None:
            raise ConfigError("Server needs at least one application")
        self._applications = applications_for_objects(applications)
        self._oidc_transport: TornadoTransport | None = None
        self._oidc = self._sign_in()
        if self._oidc is not None:
            self.auth = self._oidc.policy()
        else:
            self.auth = load_auth_module(self.config.auth_module) if self.config.auth_module else NO_AUTH
        logout_url = self.auth.logout_url_for(self.config.prefix)
        self.core = ServerCore(self.config, self._applications, logout_url=logout_url)
        plugins.attach(self.core)  # metrics, access log, admin view: as configured
        if self._oidc is not None:
            self._oidc.on_refusal = functools.partial(
                self.core.observer.error, "oidc"
            )  # counted in the metrics
        if self.config.warm:
            self.core.startup_steps.append(startup.warm)
        self._setup_done = False
        self._sockets: list[socket.socket] = list(sockets or [])
        self._workers = workers
        self._front: FrontEnd | None = None
        self._tls: ssl.SSLContext | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: asyncio.Event | None = None  # set by a signal or shutdown()
        self._stop_wanted = False  # shutdown() came before serve() had its loop
        self._stop_began: float | None = None  # time.monotonic() of the signal: the timeout counts from it
        self._delay_wanted = True  # False after SIGINT or shutdown(): skip --shutdown-delay
        self._hurry: asyncio.Event | None = None  # cuts the readiness delay short (SIGINT)
        self._stopping: asyncio.Future[None] | None = None
        self._watchdog: Watchdog | None = None
        self.left_running: list[str] = []  # what the last stop() had to leave running
        self.port: int | None = None
        if self._sockets:
            self._learn_port()

    def _sign_in(self) -> OidcSeam | None:
        """The built-in OpenID Connect sign-in, with --oidc-issuer (else None)."""
        cfg = self.config
        if cfg.oidc is None:
            return None
        secret = deployment_secret(cfg.secret_key, cfg.cookie_secret)
        self._oidc_transport = TornadoTransport()
        return OidcSeam(RelyingParty(cfg.oidc, secret, self._oidc_transport), cfg.prefix)

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

    def _peers(self) -> Peers:
        """This process's relay peers (see aperture/peers.py); a worker opens its private socket here."""
        cfg, workers = self.config, self._workers
        if workers is not None:
            self._sockets.append(bind_worker_socket(workers.socket_path(workers.number)))
        key = cfg.secret_key or (workers.key if workers is not None else None)
        declared = bool(cfg.secret_key or cfg.session_store)  # instances may relay to each other
        return Peers(
            key=key,
            instance=self._instance_address() if declared else None,
            workers=workers,
            store=bool(cfg.session_store),
        )

    def _keeper(self, peers: Peers) -> StoreKeeper | None:
        """The session store's keeper for this process, with --session-store."""
        cfg = self.config
        if not cfg.session_store:
            return None
        model_ids.install()
        lifetime = (cfg.unused_session_lifetime + cfg.check_unused_sessions) / 1000
        store = RedisStore(cfg.session_store)
        store.on_failure = functools.partial(self.core.observer.error, "store")  # counted in the metrics
        return StoreKeeper(
            store,
            identity=peers.identity,
            ttl=max(60.0, 2 * lifetime),
            flush_interval=cfg.session_store_flush / 1000,
        )

    def _instance_address(self) -> str | None:
        """Where other instances reach this one: --advertise-address, else --address and the port."""
        cfg = self.config
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
        """Listen, then run the apps' `on_server_loaded` hooks; returns once serving.

        While the hooks run, `/readyz` answers 503 ("starting") and pages and websockets wait
        for them to finish (they are refused instead if shutdown begins first).
        """
        curdoc.install()
        activation.activate(self.config.accelerate)
        self.bind()
        if self.config.setup and not self._setup_done:
            self._setup_done = True
            startup.run_setup(self.config.setup)  # once per process, before it serves
        self._loop = asyncio.get_running_loop()
        cfg = self.config
        renderer = PageRenderer(
            prefix=cfg.prefix,
            mode=cfg.resources_mode,
            minified=cfg.minified,
            js_log_level=cfg.js_log_level,
            dev=cfg.bokeh_dev,
        )
        self.core.peers = self._peers()
        keeper = self._keeper(self.core.peers)
        if keeper is not None:
            await keeper.start()
            self.core.attach_store(keeper)
        self._front = FrontEnd(self.core, self._sockets, self.port, self.auth, self._tls)
        self._front.start(renderer)
        await self.core.start()
        log.debug("Serving %s", ", ".join(sorted(self.core.apps)))

    async def stop(self, delay: float = 0.0) -> None:
        """Shut down gracefully within `--shutdown-timeout` seconds (counted from the signal, if any).

        Order: `/readyz` turns 503 and new sessions are refused (503 for pages); for `delay`
        seconds (`--shutdown-delay`, after SIGTERM/SIGHUP) everything else goes on; each
        session's timers stop once its running callback has returned; the listening sockets
        close; websockets close with 1001; every session is destroyed (`on_session_destroyed`
        runs), one whose callback has not returned by the work deadline regardless;
        `on_server_unloaded` runs. What had to be left running is in `left_running`.
        """
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._shut_down(delay))
        await asyncio.shield(self._stopping)

    async def _shut_down(self, delay: float) -> None:
        if self._stop_began is None:
            self._stop_began = time.monotonic()
        when = Deadlines.plan(self._stop_began, self.config.shutdown_timeout, delay)
        if self._watchdog is not None:
            self._watchdog.arm(when.hard)
        self.core.draining = True
        if when.delay_until > time.monotonic():
            log.info("Draining in %.1f s; /readyz answers 503 meanwhile", when.delay_until - time.monotonic())
            await self._sleep_unless_hurried(when.delay_until)
        await self.core.quiesce(when.work)  # still listening: /readyz says 503, new pages get 503
        front = self._front
        if front is not None:
            front.stop_listening()
            await self.core.flush_store()  # before the pages reconnect to the instances taking over
            await front.close_websockets(min(time.monotonic() + WEBSOCKET_CLOSE_WAIT, when.work))
        self.left_running = await self.core.stop(work_deadline=when.work, hook_deadline=when.hooks)
        if front is not None:
            await front.close_connections(max(0.1, when.hooks - time.monotonic()))
            self._front = None
        if self._oidc_transport is not None:
            self._oidc_transport.close()  # made again on first use if the server starts again
        self._sockets = []

    async def _sleep_unless_hurried(self, until: float) -> None:
        if self._hurry is None:
            self._hurry = asyncio.Event()
        try:
            await asyncio.wait_for(self._hurry.wait(), max(0.0, until - time.monotonic()))
        except TimeoutError:
            pass

    def shutdown(self) -> None:
        """Ask a running `run()` or `serve()` to stop (without the readiness delay); safe from any thread."""
        self._stop_wanted = True  # seen by serve() if its loop is not there yet
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._request_stop, None)
            except RuntimeError:
                pass  # the loop has closed: stopped already

    async def serve(self, install_signal_handlers: bool = True) -> None:
        """Start, announce the app URLs once ready, serve until a signal or `shutdown()`, then stop.

        With `install_signal_handlers` the process is taken to be this server's (the CLI, a
        `--num-procs` worker): SIGTERM and SIGHUP stop it after `--shutdown-delay` (when `/readyz`
        has been polled), SIGINT without delay; they are handled from the first moment, during
        `on_server_loaded` too; and the process ends with status 3 if the shutdown had to leave a
        callback or hook running (a thread running it would keep a normal exit waiting forever),
        by the watchdog at `--shutdown-timeout` if the event loop itself is held.
        """
        self._loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        self._hurry = asyncio.Event()
        catcher = SignalCatcher(self._on_signal) if install_signal_handlers else None
        if catcher is not None:
            self._watchdog = Watchdog(self.core.still_running)
            self._watchdog.start()
            catcher.install()
        if self._stop_wanted:
            self._request_stop(None)
        try:
            if await self._start_unless_stopped():
                for url in self.app_urls():
                    log.info("Bokeh app running at: %s", url)  # the line scripts wait for: now ready
                await self._stop_requested.wait()
            cfg = self.config
            await self.stop(cfg.shutdown_delay if self._delay_wanted and self.core.readiness_polled else 0)
            log.info("Stopped in %.2f s", time.monotonic() - (self._stop_began or time.monotonic()))
            if self.left_running and catcher is not None:
                exit_abandoned(self.left_running)  # now: tearing down the loop would wait on stuck work
        finally:
            if catcher is not None:
                catcher.restore()

    async def _start_unless_stopped(self) -> bool:
        """Start; False if a stop came first, which cancels the `on_server_loaded` hook running."""
        assert self._stop_requested is not None
        starting = asyncio.ensure_future(self.start())
        stopping = asyncio.ensure_future(self._stop_requested.wait())
        try:
            await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if starting.done():
            starting.result()
            return True
        log.info("Stopping during start-up: cancelling %s", self.core.activity or "start-up")
        starting.cancel()
        await asyncio.wait({starting})
        if not starting.cancelled() and starting.exception() is not None:
            starting.result()
        return False

    def _on_signal(self, sig: int) -> None:
        """Runs in the main thread between two bytecodes, even while app code holds the event loop:
        arm the watchdog, then let the loop do the rest when it can."""
        if self._stop_began is None:
            self._stop_began = time.monotonic()
            if self._watchdog is not None:
                self._watchdog.arm(Deadlines.plan(self._stop_began, self.config.shutdown_timeout, 0).hard)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._request_stop, sig)

    def _request_stop(self, sig: int | None) -> None:
        if sig is not None:
            name = signal.Signals(sig).name
            again = self._stop_requested is not None and self._stop_requested.is_set()
            log.info("Received %s%s", name, " again" if again else ", shutting down")
        if sig == signal.SIGINT or sig is None:  # Ctrl-C in a terminal, or shutdown(): no readiness delay
            self._delay_wanted = False
            if self._hurry is not None:
                self._hurry.set()
        if self._stop_began is None:
            self._stop_began = time.monotonic()
        if self._stop_requested is not None:
            self._stop_requested.set()

    def run(self, install_signal_handlers: bool | None = None) -> None:
        """Serve until a signal or `shutdown()`; blocks the calling thread.

        Signal handlers (and with them the shutdown watchdog, see `serve`) are installed by
        default in the main thread only.
        """
        import threading

        if install_signal_handlers is None:
            install_signal_handlers = threading.current_thread() is threading.main_thread()
        asyncio.run(self.serve(install_signal_handlers))


def versions() -> str:
    return f"Aperture {__version__} (Bokeh {bokeh.__version__}, Tornado {TORNADO_VERSION})"

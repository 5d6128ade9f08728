"""HTTP endpoints: app page, autoload.js, metadata, index, favicon, health and readiness."""

from __future__ import annotations

import logging
import os
from typing import Any

from tornado import template, web

from aperture.errors import AppFailedError, RequestRefused, SessionLimitReached
from aperture.pages import error_page, index_page, metadata_json
from aperture.security.origins import websocket_origin_allowed
from aperture.sessions.session import Session
from aperture.web import forward
from aperture.web.requests import ApertureHandler, incoming

log = logging.getLogger("aperture.server")


class SessionPageHandler(ApertureHandler):
    """Shared by the app page and autoload.js: find or create the requested session."""

    async def resolve_session(self) -> tuple[Session, str] | None:
        if not self.require_user():
            return None
        try:
            return await self.core.session_for_request(self.route, incoming(self.request))
        except RequestRefused as refused:
            raise web.HTTPError(refused.status, reason=refused.reason) from None
        except AppFailedError as failure:
            self.app_failed(failure)
            return None
        except SessionLimitReached as refusal:
            if not await self._forwarded_to_sibling():
                self.over_limit(refusal)
            return None

    async def _forwarded_to_sibling(self) -> bool:
        """Hand a view refused here to a sibling worker with room (once); True if it answered."""
        workers = self.core.peers.workers
        if workers is None or forward.forwarded(self.request):
            return False
        tls = bool(self.core.config.ssl_certfile)
        for number in self.core.admission.siblings_with_room(self.route):
            answer = await forward.forward_view(
                self.request, workers.socket_path(number), tls=tls, request_id=self.request_id
            )
            if answer is None:
                continue
            log.debug("Page view of %s forwarded to worker %d: %d", self.route, number, answer.status)
            self.clear()
            self.set_status(answer.status, answer.reason or None)
            for name in {name for name, _ in answer.headers}:
                self.clear_header(name)
            for name, value in answer.headers:
                self.add_header(name, value)
            self.finish(answer.body)
            return True
        return False

    def over_limit(self, refusal: SessionLimitReached) -> None:
        """503 with Retry-After and a short page naming the app: a new session would pass a limit."""
        admission = self.core.admission
        admission.refused(refusal)
        self.set_status(503, "Server Busy")
        self.set_header("Retry-After", str(admission.retry_after))
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        what = "this server is serving" if refusal.scope == "process" else "this app is serving"
        summary = (
            f"The app at {self.route} cannot open a new session right now: {what} as many sessions "
            f"as it allows.\n\nPlease try again in {admission.retry_after} seconds. Pages already "
            "open keep working."
        )
        self.finish(error_page(503, "Server busy", summary))

    def app_failed(self, failure: AppFailedError) -> None:
        detail = failure.detail if self.settings.get("serve_traceback") else None
        self.set_status(500, "Application error")
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        summary = f"The app at {self.route} raised an error while building its page:\n\n{failure.summary}"
        self.finish(error_page(500, "Application error", summary, detail))


class AppPageHandler(SessionPageHandler):
    """`GET P A`: the HTML page that loads BokehJS and connects back over the websocket."""

    async def get(self, *args: Any) -> None:
        resolved = await self.resolve_session()
        if resolved is None:
            return
        session, token = resolved
        page = self.renderer.app_page(session, token)
        self.set_header("Content-Type", "text/html")
        self.finish(page)


class AutoloadHandler(SessionPageHandler):
    """`GET P A/autoload.js`: a script that embeds the app into another page."""

    def set_default_headers(self) -> None:
        super().set_default_headers()
        origin = self.request.headers.get("Origin")
        if origin and self._origin_trusted(origin):
            # Credentialed embedding only for origins the websocket would accept too.
            self.set_header("Access-Control-Allow-Origin", origin)
            self.set_header("Access-Control-Allow-Credentials", "true")
            self.set_header("Vary", "Origin")
        else:
            self.set_header("Access-Control-Allow-Origin", "*")
        self.set_header("Access-Control-Allow-Headers", "*")

    def _origin_trusted(self, origin: str) -> bool:
        return websocket_origin_allowed(
            origin=origin,
            host=self.request.headers.get("Host"),
            sec_fetch_site=None,
            allowlist=self.settings["aperture_origins"],
        )

    async def prepare(self) -> None:
        if self.request.method != "OPTIONS":  # preflights carry no credentials
            await super().prepare()

    def options(self, *args: Any) -> None:
        self.set_header("Access-Control-Allow-Methods", "GET, OPTIONS")
        requested = self.request.headers.get("Access-Control-Request-Headers")
        if requested:
            self.set_header("Access-Control-Allow-Headers", requested)
        self.set_status(200)
        self.finish()

    async def get(self, *args: Any) -> None:
        if not self.require_user():
            return
        element_id = self.get_argument("bokeh-autoload-element", default="")
        if not element_id:
            raise web.HTTPError(400, reason="No bokeh-autoload-element query parameter")
        resolved = await self.resolve_session()
        if resolved is None:
            return
        session, token = resolved
        js = self.renderer.autoload_js(
            token,
            element_id,
            app_path=self.get_argument("bokeh-app-path", default="/"),
            absolute_url=self.get_argument("bokeh-absolute-url", default=None),
            load_bokehjs=self.get_argument("resources", default="default") != "none",
        )
        self.set_header("Content-Type", "application/javascript")
        self.finish(js)


class MetadataHandler(ApertureHandler):
    """`GET P A/metadata`: the app's metadata as JSON; creates no session."""

    def get(self, *args: Any) -> None:
        if not self.require_user():
            return
        data = self.core.apps[self.route].runner.metadata()
        self.set_header("Content-Type", "application/json")
        self.finish(metadata_json(self.route, data))


class IndexHandler(ApertureHandler):
    """`GET P/`: redirect to the only app, or list the apps."""

    def initialize(self, core: Any, renderer: Any, route: str = "/", index: str | None = None) -> None:
        super().initialize(core, renderer, route)
        self.index_template = index

    def get(self, *args: Any) -> None:
        if not self.require_user():
            return
        routes = sorted(self.core.apps)
        prefix = self.renderer.prefix
        if len(routes) == 1 and self.settings["aperture_redirect_root"]:
            self.redirect(prefix + routes[0])
            return
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        if self.index_template is None:
            self.finish(index_page(prefix, routes))
            return
        directory, name = os.path.split(os.path.abspath(self.index_template))
        page = template.Loader(directory).load(name).generate(prefix=prefix, items=routes)
        self.finish(page)


class FaviconHandler(ApertureHandler):
    """`GET /favicon.ico` (never prefixed), read once at start-up."""

    def initialize(self, core: Any, renderer: Any, route: str = "/", icon: bytes = b"") -> None:
        super().initialize(core, renderer, route)
        self.icon = icon

    def get(self, *args: Any) -> None:
        self.set_header("Content-Type", "image/x-icon")
        self.set_header("Cache-Control", "max-age=86400")
        self.finish(self.icon)


class HealthHandler(ApertureHandler):
    """`GET P/healthz`: the process is up. Runs no app, creates no session, needs no login."""

    async def prepare(self) -> None:
        pass  # never consults the auth module

    def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.finish({"status": "ok"})


class ReadyHandler(HealthHandler):
    """`GET P/readyz`: 200 while new sessions are accepted; 503 while `on_server_loaded` hooks
    still run ("starting"), once shutdown began ("draining") and while the process holds
    `--max-sessions` sessions and no sibling worker has room ("full"; an app at
    `--max-sessions-per-app` alone does not make it unready: the other apps still take visitors).
    Being asked at all tells the server a balancer polls it, so SIGTERM then waits
    `--shutdown-delay` before draining."""

    def get(self) -> None:
        core = self.core
        core.readiness_polled = True
        self.set_header("Cache-Control", "no-store")
        if core.ready and core.admission.server_full():
            self.set_header("Retry-After", str(core.admission.retry_after))
            self.set_status(503, "Full")
            self.finish({"status": "full"})
            return
        if core.ready:
            self.finish({"status": "ready"})
            return
        starting = not core.draining
        self.set_status(503, "Starting" if starting else "Draining")
        self.finish({"status": "starting" if starting else "draining"})

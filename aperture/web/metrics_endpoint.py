"""`GET P/metrics` (with `--metrics`): the Prometheus scrape.

A scraper cannot log in, so the auth module is never consulted (like `/healthz`); who may reach
the endpoint is the deployment's business (a proxy's allow-list, the listening address; see
docs/operations.md). It runs no app and makes no session; only GET and HEAD are answered, never
cached, in the text format, or OpenMetrics when the `Accept` header asks for it.
"""

from __future__ import annotations

from typing import Any

from tornado import web

from aperture.core import ServerCore
from aperture.operations.metrics import MetricsObserver
from aperture.pages import error_page


def metrics_observer(core: ServerCore) -> MetricsObserver | None:
    for observer in core.observer:
        if isinstance(observer, MetricsObserver):
            return observer
    return None


class MetricsHandler(web.RequestHandler):
    SUPPORTED_METHODS = ("GET", "HEAD")  # type: ignore[assignment]

    def initialize(self, core: ServerCore) -> None:
        self.core = core

    def set_default_headers(self) -> None:
        self.set_header("Server", "Aperture")
        self.set_header("Cache-Control", "no-store")

    def _scrape(self) -> bytes:
        observer = metrics_observer(self.core)
        if observer is None:
            raise web.HTTPError(404)
        body, content_type = observer.exposition(self.request.headers.get("Accept"))
        self.set_header("Content-Type", content_type)
        return body

    def get(self) -> None:
        self.finish(self._scrape())

    def head(self) -> None:
        self.set_header("Content-Length", str(len(self._scrape())))
        self.finish()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(error_page(status_code, self._reason, self._reason))

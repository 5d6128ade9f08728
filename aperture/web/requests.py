"""Tornado requests to the core's `IncomingRequest`, and shared handler behaviour."""

from __future__ import annotations

import logging
from typing import Any

from tornado import web

from aperture.core import IncomingRequest, ServerCore
from aperture.pages import PageRenderer, error_page

log = logging.getLogger("aperture.server")


def incoming(request: Any) -> IncomingRequest:
    """Arguments (lists of bytes), Title-Case headers (repeats joined by ','), cookies, source."""
    return IncomingRequest(
        arguments={k: list(v) for k, v in request.query_arguments.items()},
        headers=dict(request.headers),
        cookies={name: morsel.value for name, morsel in request.cookies.items()},
        source=request,
    )


class ApertureHandler(web.RequestHandler):
    """Base of every Aperture HTTP handler: short error pages, no tracebacks unless --dev."""

    core: ServerCore
    renderer: PageRenderer

    def initialize(self, core: ServerCore, renderer: PageRenderer, route: str = "/") -> None:
        self.core = core
        self.renderer = renderer
        self.route = route

    def set_default_headers(self) -> None:
        self.set_header("Server", "Aperture")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        reason = self._reason
        detail = None
        if self.settings.get("serve_traceback") and "exc_info" in kwargs:
            import traceback

            detail = "".join(traceback.format_exception(*kwargs["exc_info"]))
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(error_page(status_code, reason, reason, detail))

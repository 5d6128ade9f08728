"""The access log: one line per HTTP request and per websocket session end, on `aperture.access`."""

from __future__ import annotations

import logging
from typing import Any

from aperture.operations.observer import Observer, WebsocketEnd

log = logging.getLogger("aperture.access")


class AccessLog(Observer):
    def request_finished(self, handler: Any) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        request = handler.request
        status = handler.get_status()
        millis = 1000.0 * request.request_time()
        log.info("%d %s %s (%s) %.2fms", status, request.method, request.uri, request.remote_ip, millis)

    def websocket_closed(self, end: WebsocketEnd) -> None:
        log.info(
            "websocket end %s session %r (%s) %.1fs code=%s",
            end.app,
            end.session_id[:12],
            end.client,
            end.seconds,
            end.code,
        )

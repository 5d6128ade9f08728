"""The access log: one line per HTTP request and per websocket session end, on `aperture.access`.

Each line is logged at info level with its fields in `extra={"aperture": {...}}`, so the JSON
format shows them as keys; the text form reads

    127.0.0.1 "GET /sliders?bokeh-token=REDACTED" 200 12.31ms id=4f2a9c0d1e2b3a4c app=/sliders
    127.0.0.1 websocket end app=/sliders session=Xq3... code=1001 open=35.2s in=12 out=40 ...

Values that grant access are never logged whole: the `bokeh-token` and `bokeh-session-id`
query parameters are replaced by REDACTED (the path and the other parameters stay), and a
session id is cut to its first 12 characters, as everywhere in Aperture's logs. Paths are cut
at 2000 characters, and control characters are escaped, so a crafted URL cannot forge lines.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import unquote_plus

from aperture.operations.log_context import current, request_id_from
from aperture.operations.observer import Observer, WebsocketEnd

log = logging.getLogger("aperture.access")

SECRET_PARAMETERS = frozenset({"bokeh-token", "bokeh-session-id"})
"""Query parameters whose values let a log reader open a session."""
CALLBACK_SECRETS = frozenset({"code", "state"})
"""Also hidden on the OpenID Connect callback (`.../oidc/callback`): a code could be redeemed."""
REDACTED = "REDACTED"
MAX_PATH = 2000
SESSION_PREFIX = 12


def printable(text: str, limit: int = MAX_PATH) -> str:
    """`text` with control characters escaped (\\xNN), cut at `limit` characters."""
    if len(text) > limit:
        text = text[:limit] + "..."
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() else f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}" for c in text
    )


def redacted_uri(uri: str) -> str:
    """The request URI with the values of secret query parameters replaced (the rest kept as sent)."""
    path, sep, query = uri.partition("?")
    if not sep:
        return uri
    secret = SECRET_PARAMETERS | CALLBACK_SECRETS if path.endswith("/oidc/callback") else SECRET_PARAMETERS
    parts = []
    for part in query.split("&"):
        name, equals, _ = part.partition("=")
        if equals and unquote_plus(name).strip().lower() in secret:
            part = f"{name}={REDACTED}"
        parts.append(part)
    return f"{path}?{'&'.join(parts)}"


def request_fields(handler: Any) -> dict[str, Any]:
    """What the access log records of one finished HTTP request."""
    request = handler.request
    request_id = getattr(handler, "request_id", None) or request_id_from(request.headers.get("X-Request-Id"))
    fields: dict[str, Any] = {
        "kind": "http",
        "method": printable(request.method or "", 20),
        "path": printable(redacted_uri(request.uri or "")),
        "status": handler.get_status(),
        "duration_ms": round(1000.0 * request.request_time(), 2),
        "client": request.remote_ip,
        "request_id": request_id,
    }
    app = getattr(handler, "log_app", None) or current().get("app")
    if app:
        fields["app"] = app
    return fields


def websocket_fields(end: WebsocketEnd) -> dict[str, Any]:
    """What the access log records of one websocket session end."""
    fields: dict[str, Any] = {
        "kind": "websocket",
        "app": end.app,
        "client": end.client,
        "request_id": end.request_id,
        "duration_ms": round(1000.0 * end.seconds, 2),
        "code": end.code,
        "reason": printable(end.reason or "", 200),
        "messages_in": end.messages_in,
        "messages_out": end.messages_out,
        "bytes_in": end.bytes_in,
        "bytes_out": end.bytes_out,
        "relayed": end.relayed,
    }
    if end.session_id:
        fields["session"] = end.session_id[:SESSION_PREFIX]
    return fields


class AccessLog(Observer):
    """Logs each finished request (Tornado's `log_function`) and each websocket end."""

    def request_finished(self, handler: Any) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        f = request_fields(handler)
        app = f" app={f['app']}" if "app" in f else ""
        log.info(
            '%s "%s %s" %d %.2fms id=%s%s',
            f["client"],
            f["method"],
            f["path"],
            f["status"],
            f["duration_ms"],
            f["request_id"],
            app,
            extra={"aperture": f},
        )

    def websocket_closed(self, end: WebsocketEnd) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        f = websocket_fields(end)
        log.info(
            "%s websocket end app=%s session=%s code=%s open=%.1fs in=%d/%dB out=%d/%dB id=%s%s%s",
            f["client"],
            f["app"],
            f.get("session", "-"),
            f["code"],
            end.seconds,
            f["messages_in"],
            f["bytes_in"],
            f["messages_out"],
            f["bytes_out"],
            f["request_id"],
            " relayed" if end.relayed else "",
            f" reason={f['reason']!r}" if f["reason"] else "",
            extra={"aperture": f},
        )

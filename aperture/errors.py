"""The exception tree of Aperture, and whose fault each error is.

    ApertureError
    ├── ConfigError            bad settings: names the flag and the environment variable
    ├── AppLoadError           an application could not be loaded at start-up
    ├── PeerError              the remote side did something wrong, or must go elsewhere (carries a close code)
    │   ├── ProtocolViolation  malformed frames, bad JSON, unknown or unexpected message types
    │   ├── TokenError         a session token or id that is malformed, forged or expired
    │   └── SessionLimitReached  a new session would exceed --max-sessions(-per-app): try again later
    └── SessionError           a session could not be created or found

Peer errors carry a WebSocket close code inside RFC 6455's range and a short,
traceback-free reason that is safe to send to the client.
"""

from __future__ import annotations

# WebSocket close codes used by Aperture (all inside RFC 6455's 1000-4999 range).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013


class ApertureError(Exception):
    """Base class of every error Aperture raises on purpose."""


class ConfigError(ApertureError):
    """A setting has a bad value; the message names the flag and the variable."""


class AppLoadError(ApertureError):
    """An application given on the command line cannot be loaded."""


class PeerError(ApertureError):
    """The peer's fault. `reason` is short and safe to send; `close_code` says how to close."""

    close_code: int = CLOSE_PROTOCOL_ERROR

    def __init__(self, reason: str, close_code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if close_code is not None:
            self.close_code = close_code


class ProtocolViolation(PeerError):
    """A frame or message that breaks the Bokeh protocol."""

    close_code = CLOSE_PROTOCOL_ERROR


class TokenError(PeerError):
    """A session token or session id that is malformed, badly signed or expired."""

    close_code = CLOSE_POLICY_VIOLATION


class SessionLimitReached(PeerError):
    """A new session was refused because this process (`scope` "process") or the app (`scope` "app")
    holds as many sessions as `--max-sessions` / `--max-sessions-per-app` allow. Not the client's
    fault: it may try again later, or elsewhere (HTTP 503 with Retry-After; close code 1013)."""

    close_code = CLOSE_TRY_AGAIN_LATER

    def __init__(self, app: str, scope: str, limit: int) -> None:
        what = "server" if scope == "process" else "app"  # short: a close reason has 123 bytes at most
        super().__init__(f"{what} at its session limit; try again later")
        self.app = app
        self.scope = scope
        self.limit = limit


class SessionError(ApertureError):
    """A session could not be created or looked up."""


class AppFailedError(SessionError):
    """App code raised while building a session's document."""

    def __init__(self, summary: str, detail: str) -> None:
        super().__init__(summary)
        self.summary = summary
        self.detail = detail


class RequestRefused(ApertureError):
    """An HTTP request the server answers with an error status and a short reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason

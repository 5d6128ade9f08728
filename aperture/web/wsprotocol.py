"""`WatchedProtocol`: Tornado's RFC 6455 protocol, remembering when it ended a connection itself.

Tornado's protocol object closes a connection on its own when a message is larger than
`websocket_max_message_size` (a 1009 close) or a frame breaks RFC 6455 (reserved bits, a long
or fragmented control frame, text that is not UTF-8: the socket is simply dropped), and tells the
handler nothing; afterwards such a connection looks like one the peer closed normally. This
subclass notes the fault at the moment it happens, in `fault`, so that the handler logs exactly
those closes and stays quiet for the normal ones. `watched` applies it to the protocol object
Tornado chose, keeping Tornado's own choice of protocol version.
"""

from __future__ import annotations

import sys

from tornado.websocket import WebSocketProtocol, WebSocketProtocol13

from aperture.errors import CLOSE_TOO_BIG

TOO_BIG = "a message larger than --websocket-max-message-size"
MALFORMED = "a frame that breaks RFC 6455 (reserved bits, a bad control frame or text that is not UTF-8)"


class WatchedProtocol(WebSocketProtocol13):
    """RFC 6455 as Tornado speaks it; `fault` says why the protocol itself gave up, if it did."""

    fault: str | None = None

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        # Tornado's own 1009 comes first; the handler's closes are told apart by the handler.
        if code == CLOSE_TOO_BIG and self._still_open():
            self.fault = TOO_BIG
        super().close(code, reason)

    def _abort(self) -> None:
        # An abort while both sides are still open and no exception is being handled is Tornado
        # refusing a frame; aborts for a dropped stream or a failing callback happen in `except`
        # blocks (undecodable text is the one refusal that does, too).
        handling = sys.exc_info()[1]
        if self._still_open() and (handling is None or isinstance(handling, UnicodeDecodeError)):
            self.fault = MALFORMED
        super()._abort()

    def _still_open(self) -> bool:
        stream = self.stream
        return (
            self.fault is None
            and not (self.client_terminated or self.server_terminated)
            and stream is not None
            and not stream.closed()
        )


def watched(protocol: WebSocketProtocol | None) -> WebSocketProtocol | None:
    """The same protocol object, as a `WatchedProtocol` when it is Tornado's RFC 6455 one."""
    if type(protocol) is WebSocketProtocol13:
        protocol.__class__ = WatchedProtocol
    return protocol

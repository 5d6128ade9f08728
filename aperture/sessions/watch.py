"""`SessionWatch`: what sessions report about their work, and the slow-callback warning.

The registry makes one per app and hands it to each session it builds. Durations go to the
server's observer (metrics, admin view); anything that ran longer than `--slow-callback-ms` is
also logged as one WARNING naming the app, the session and what ran, and reported with
`Observer.slow_callback`. Without an observer or a limit, the watch costs a comparison per call.
"""

from __future__ import annotations

import logging
import math

from aperture.operations.observer import Observer

log = logging.getLogger("aperture.sessions")


class SessionWatch:
    def __init__(self, observer: Observer | None = None, slow_callback_ms: int = 0) -> None:
        self.observer = observer if observer is not None else Observer()
        self.slow_callback_ms = slow_callback_ms
        self.slow_seconds = slow_callback_ms / 1000 if slow_callback_ms > 0 else math.inf

    def callback_ran(
        self, app: str, session_id: str, kind: str, name: str, seconds: float, raised: bool
    ) -> None:
        """A timer callback (`kind`: periodic, timeout, next_tick) returned or raised."""
        self.observer.callback_ran(app, session_id, kind, seconds)
        if raised:
            self.observer.error("callback")
        if seconds > self.slow_seconds:
            self.slow(app, session_id, f"{kind} callback {name[:80]}", seconds)

    def message_handled(
        self, app: str, session_id: str, msgtype: str, seconds: float, work_seconds: float
    ) -> None:
        """A client message was answered `seconds` after it arrived, `work_seconds` of which it held
        the session (the part judged slow or not)."""
        self.observer.message_handled(app, msgtype, seconds)
        if work_seconds > self.slow_seconds:
            self.slow(app, session_id, msgtype, work_seconds)

    def slow(self, app: str, session_id: str, what: str, seconds: float) -> None:
        log.warning(
            "Slow %s in app %s, session %r: %.0f ms (over --slow-callback-ms %d)",
            what,
            app,
            session_id[:12],
            seconds * 1000,
            self.slow_callback_ms,
        )
        self.observer.slow_callback(app, session_id, what, seconds)

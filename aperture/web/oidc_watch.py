"""An open websocket's sign-in: refreshed in memory before it ends, the socket closed when it can't be.

A websocket lives longer than the page request that set the session cookie, and its upgrade
cannot set cookies. So the watch takes the sign-in the upgrade carried, refreshes it with its
refresh token shortly before it ends (`REFRESH_BEFORE`), and keeps doing so (retrying every few
seconds while the provider cannot be reached); when there is no
refresh token or the provider refuses, it waits for the sign-in's end and then calls `on_expired`
(the websocket closes with 1008). The refreshed tokens are not written back to the browser: with
refresh-token rotation the cookie's refresh token may then be stale, and the next page load either
refreshes from it or signs in again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aperture.identity.relying_party import RelyingParty
from aperture.identity.signins import Identity
from aperture.identity.transport import ProviderError

log = logging.getLogger("aperture.identity")

REFRESH_BEFORE = 30.0  # seconds before the sign-in ends when an open websocket refreshes it
RETRY_AFTER = 5.0  # seconds between attempts while the provider cannot be reached


class SignInWatch:
    """Keeps one websocket's sign-in alive while it can; tells `on_expired` when it cannot."""

    def __init__(
        self,
        rp: RelyingParty,
        identity: Identity,
        on_expired: Callable[[], None],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rp = rp
        self.identity = identity
        self.refreshes = 0
        self._on_expired = on_expired
        self._clock = clock
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self._schedule(self._refresh_time(identity), self._due)

    @staticmethod
    def _refresh_time(identity: Identity) -> float:
        return identity.expires_at - identity.refresh_margin(REFRESH_BEFORE)

    def _schedule(self, when: float, action: Callable[[], None]) -> None:
        self._timer = self._loop.call_later(max(0.0, when - self._clock()), action)

    def _due(self) -> None:
        self._task = self._loop.create_task(self._renew())

    async def _renew(self) -> None:
        try:
            fresh = await self.rp.refresh(self.identity) if self.identity.refresh_token else None
        except ProviderError:  # unreachable for now: try again while the sign-in lasts
            if not self._stopped:
                retry = self._clock() + RETRY_AFTER
                if retry < self.identity.expires_at:
                    self._schedule(retry, self._due)
                else:
                    self._schedule(self.identity.expires_at, self._expire)
            return
        if self._stopped:
            return
        if fresh is not None and self._refresh_time(fresh) > self._clock():
            self.identity = fresh
            self.refreshes += 1
            log.debug("Refreshed the sign-in of %r for an open websocket", fresh.user)
            self._schedule(self._refresh_time(fresh), self._due)
            return
        self._schedule(self.identity.expires_at, self._expire)

    def _expire(self) -> None:
        if not self._stopped:
            log.info("OpenID Connect sign-in of %r ended: closing its websocket", self.identity.user)
            self._on_expired()

    def stop(self) -> None:
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
        if self._task is not None and not self._task.done():
            self._task.cancel()

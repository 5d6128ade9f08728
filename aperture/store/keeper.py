"""`StoreKeeper`: what one server process does with the session store.

* **Own**: a session this process builds is registered under its identity (`HOST:PORT|N`) before
  the page that made it is answered, so any instance a websocket lands on can tell where it lives.
* **Keep**: every document event of an owned session goes to its `ChangeLog` (a set insertion on
  the interactive path); a flusher collects the changes of all sessions every `--session-store-flush`
  milliseconds and writes them in one pipeline, never making a page or a message wait for Redis.
  The same pass extends the expiry of every owned session, and a heartbeat says this process lives.
* **Take over**: a session whose owner is gone (no heartbeat, unreachable, or released by a graceful
  shutdown) is claimed atomically and rebuilt here from its stored state (`snapshot.restore`).
* **Lose**: if a write finds that another process now owns a session (it took it over), this
  process drops its own copy (`on_lost`), closing its connections so that they reconnect there.
* **Let go**: a session that ends is deleted from the store; at shutdown every owned session is
  flushed and released instead, for the surviving instances to take over at once.

While Redis is down, sessions carry on here unstored; when it returns they are registered and
written in full again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aperture.apps.model_ids import IdSource
from aperture.store.redis_store import RedisStore, SessionRecord, StoreUnavailable, session_key
from aperture.store.snapshot import Baseline, ChangeLog, Delta, StoredState

log = logging.getLogger("aperture.store")

HEARTBEAT_SECONDS = 1.0
BUSY_FLUSHES_SKIPPED = 5
YIELD_EVERY = 8  # sessions collected between two turns of the event loop in a flush  # a session busy at this many flushes in a row is read under its lock
PEER_TTL_SECONDS = 3.0


@dataclass(eq=False)
class Kept:
    """An owned session as the keeper follows it."""

    session: Any  # aperture.sessions.session.Session
    route: str
    changes: ChangeLog
    ids: IdSource
    key: str
    registered: bool = False
    pending: bool = True  # being restored or registered: the flusher leaves it alone
    skipped: int = 0  # flushes in a row that found the session busy
    written_number: int = -1
    written_resumable: bool = False
    touched: float = field(default_factory=time.monotonic)


class StoreKeeper:
    """This process's view of the shared session store."""

    def __init__(
        self,
        store: RedisStore,
        *,
        identity: str,
        ttl: float,
        flush_interval: float,
    ) -> None:
        self.store = store
        self.identity = identity
        self.ttl = ttl
        self.flush_interval = flush_interval
        self._kept: dict[int, Kept] = {}  # id(session) -> entry
        self._forget: list[tuple[str, str]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._flushing: asyncio.Lock | None = None
        self.on_lost: Callable[[Any], None] | None = None  # a session another process took over
        store.on_return = self._store_returned

    @property
    def available(self) -> bool:
        return self.store.available

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        self._flushing = asyncio.Lock()
        try:
            await self.store.ping()
            await self.store.beat(self.identity, PEER_TTL_SECONDS)
            log.info("Session store %s: this process is %s", _shown(self.store.url), self.identity)
        except StoreUnavailable:
            pass  # logged; sessions work unstored until it returns
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._heartbeat()), loop.create_task(self._flush_loop())]

    async def stop(self, *, hand_over: bool) -> None:
        """Write what is pending; with `hand_over`, release every owned session for others to take."""
        for task in self._tasks:
            task.cancel()
        self._tasks = []
        try:
            await self.flush()
            if hand_over and self._kept:
                keys = [k.key for k in self._kept.values() if k.registered]
                await self.store.release_many(keys, self.identity, ttl=self.ttl)
                log.info("Released %d session(s) to the other instances", len(keys))
            self._kept.clear()
            await self.store.stop_beating(self.identity)
        except StoreUnavailable:
            pass
        await self.store.close()

    # -- what the core asks ------------------------------------------------------------------

    async def record(self, route: str, session_id: str) -> SessionRecord | None:
        return await self.store.record(route, session_id)

    async def owner_alive(self, owner: str) -> bool:
        return await self.store.alive(owner)

    async def claim(self, route: str, session_id: str, record: SessionRecord) -> str | None:
        """Make this process the owner; None on success, else the owner that got there first."""
        return await self.store.claim(route, session_id, record.owner, self.identity, ttl=self.ttl)

    async def stored_state(self, route: str, session_id: str, record: SessionRecord) -> StoredState:
        fields = await self.store.state_fields(route, session_id)
        return StoredState.from_fields(record.fingerprint, fields)

    # -- owned sessions -------------------------------------------------------------------

    def keep(self, session: Any, route: str, ids: IdSource, baseline: Baseline) -> ChangeLog:
        """Start following a session built (or restored) here; returns the log its events go to."""
        entry = Kept(session, route, ChangeLog(baseline), ids, session_key(route, session.id))
        self._kept[id(session)] = entry
        return entry.changes

    def is_kept(self, session: Any) -> bool:
        return id(session) in self._kept

    async def register(self, session: Any, *, replace: bool) -> bool:
        """Record a kept session as this process's; False if another process already has it."""
        entry = self._kept.get(id(session))
        if entry is None:
            return False
        try:
            other = await self.store.register(
                entry.route, session.id, self.identity, self._meta(entry), ttl=self.ttl, replace=replace
            )
        except StoreUnavailable:
            entry.pending = False
            return True  # registered when the store returns
        if other is not None:
            log.warning(
                "Session %r of %s is owned by %s already; this copy is not stored",
                session.id[:12],
                entry.route,
                other,
            )
            del self._kept[id(session)]
            session.changes = None
            return False
        entry.pending = False
        entry.registered = True
        if replace:
            entry.changes.rewrite_all()
        return True

    def mark_registered(self, session: Any, *, stored_models: dict[str, Any]) -> None:
        """A kept session was claimed from the store and restored: its record is there already."""
        entry = self._kept.get(id(session))
        if entry is not None:
            entry.pending = False
            entry.registered = True
            entry.written_number = -1  # write the id counter and the resumable flag at the next flush
            entry.written_resumable = not session.resumable
            entry.changes.adopt_stored(stored_models)

    def _meta(self, entry: Kept) -> dict[str, str]:
        entry.written_number = entry.ids.last
        entry.written_resumable = bool(entry.session.resumable)
        return {
            "app": entry.route,
            "fp": entry.changes.baseline.fingerprint,
            "next": str(entry.written_number),
            "resumable": "1" if entry.written_resumable else "0",
            "born": str(int(time.time())),
        }

    def ended(self, session: Any) -> None:
        """A kept session was destroyed here: delete it from the store (at the next flush)."""
        entry = self._kept.pop(id(session), None)
        if entry is not None and entry.registered:
            self._forget.append((entry.route, session.id))

    # -- background work ---------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                await self.store.beat(self.identity, PEER_TTL_SECONDS)
            except StoreUnavailable:
                pass

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            try:
                await self.flush()
            except Exception:
                log.exception("Error writing to the session store")

    async def flush(self) -> None:
        """Write every kept session's pending changes (and refresh expiries) in one round trip."""
        assert self._flushing is not None
        async with self._flushing:
            await self._flush()

    async def _flush(self) -> None:
        if not self.store.available:
            return
        now = time.monotonic()
        writes: list[tuple[str, dict[str, bytes], list[str]]] = []
        entries: list[Kept] = []
        for count, entry in enumerate(list(self._kept.values())):
            if count and not count % YIELD_EVERY:
                await asyncio.sleep(0)  # let the interactive path in between sessions
            if entry.pending or entry.session.destroyed:
                continue
            if not entry.registered:
                if not await self.register(entry.session, replace=False):
                    if self.on_lost is not None:  # another process owns it now: its clients go there
                        self.on_lost(entry.session)
                    continue
                if not entry.registered:
                    return  # the store went down meanwhile
            delta = await self._collect(entry)
            if delta is None:
                continue
            meta: dict[str, bytes] = {}
            if entry.ids.last != entry.written_number:
                entry.written_number = entry.ids.last
                meta["next"] = str(entry.written_number).encode()
            resumable = bool(entry.session.resumable)
            if resumable != entry.written_resumable:
                entry.written_resumable = resumable
                meta["resumable"] = b"1" if resumable else b"0"
            if not delta and not meta and now - entry.touched < self.ttl / 3:
                continue
            entry.touched = now
            writes.append((entry.key, {**meta, **delta.fields}, delta.removed))
            entries.append(entry)
        forget, self._forget = self._forget, []
        try:
            results = await self.store.write_many(self.identity, writes, ttl=self.ttl)
            for route, session_id in forget:
                await self.store.forget(route, session_id, self.identity)
        except StoreUnavailable:
            for entry in entries:
                entry.changes.rewrite_all()
            self._forget.extend(forget)
            return
        for entry, ours in zip(entries, results, strict=True):
            if not ours and self._kept.pop(id(entry.session), None) is not None:
                log.warning(
                    "Session %r of %s was taken over by another process; dropping this copy",
                    entry.session.id[:12],
                    entry.route,
                )
                if self.on_lost is not None:
                    self.on_lost(entry.session)

    async def _collect(self, entry: Kept) -> Delta | None:
        """The session's changes since the last flush. Read on the event loop while no locked
        operation runs (nothing can change the document then); a busy session waits for a later
        flush, and only one that stayed busy for several flushes is read under its lock."""
        session = entry.session
        if session.destroyed:
            return None
        if not session.busy:
            entry.skipped = 0
            return entry.changes.collect(session.document)
        entry.skipped += 1
        if entry.skipped < BUSY_FLUSHES_SKIPPED:
            return Delta()
        entry.skipped = 0
        delta: Delta | None = await session.run_locked(entry.changes.collect, session.document)
        return delta

    def _store_returned(self) -> None:
        for entry in self._kept.values():
            entry.registered = False  # register again, then write everything
            entry.changes.rewrite_all()


def _shown(url: str) -> str:
    from aperture.store.redis_store import redacted

    return redacted(url)

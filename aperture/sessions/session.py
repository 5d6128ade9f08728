"""`Session`: one live Bokeh document and the connections that watch it.

This class is Aperture's single adapter to Bokeh's document seam: the document calls
`_document_patched`, `_session_callback_added` and `_session_callback_removed` on it
(registered with `on_change_dispatch_to`). Invariants:

* the document is changed only while `run_locked` holds the session lock (one
  locked operation at a time per session; not re-entrant), otherwise
  `_document_patched` raises, as Bokeh apps expect;
* every change event is serialized once, when it happens, and the same frames are
  queued to every subscriber in event order; a change applied from a client's
  PATCH-DOC is not echoed to that client, but changes made by the callbacks it
  triggers are;
* `curdoc()` is this document for the whole locked operation, across awaits;
* app code run here never lets a `BaseException` out: `sys.exit()` and the like
  fail that one operation as an `AppExit` (see `aperture.apps.guard`), on the
  event loop or on a worker thread alike.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from time import perf_counter
from typing import Any, Protocol

from bokeh.document import Document

from aperture.apps.curdoc import patched
from aperture.apps.guard import contained
from aperture.apps.panel_support import EventSink
from aperture.operations import log_context
from aperture.protocol import Buffer, MessageIds, RawJSON, encode, patch_doc
from aperture.sessions import wire
from aperture.sessions.callbacks import SessionCallbacks
from aperture.sessions.context import SessionContext
from aperture.sessions.watch import SessionWatch

log = logging.getLogger("aperture.sessions")


INLINE_PULL_SECONDS = 0.002
"""A PULL-DOC serialization this short runs on the event loop (see `Session.pull`)."""

BATCH_WINDOW = 0.005
"""Seconds for which a worker's locked call may keep its changes, to send them together (`_LoopBatch`)."""

_pull_seconds: dict[str, float] = {}  # per app route: how long its last PULL-DOC serialization took


class _LoopBatch:
    """`Session._on_loop` calls made by the worker thread running one locked call, kept to run on
    the loop together (one wake-up of the loop instead of one per patch). `run` runs them and
    closes the batch: after it, calls take the ordinary way to the loop, in order. The session
    runs it when the locked call returns, or `BATCH_WINDOW` after it began if it is still going,
    so a slow callback's first changes reach clients without waiting for its end."""

    def __init__(self) -> None:
        self.thread: int | None = None
        self._calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self._open = True
        self._lock = threading.Lock()

    def add(self, func: Callable[..., Any], args: tuple[Any, ...]) -> bool:
        """Keep `func(*args)` for `run`; False if the caller must send it to the loop itself."""
        with self._lock:
            if self._open:
                self._calls.append((func, args))
            return self._open

    def run(self) -> None:
        with self._lock:
            self._open = False
            calls, self._calls = self._calls, []
        for func, args in calls:
            try:
                func(*args)
            except Exception:  # as the event loop would: logged, and the others still run
                log.exception("Error in %r after a locked call", func)


class ChangeRecorder(Protocol):
    """Told every change event of the document (`aperture.store.snapshot.ChangeLog`)."""

    def record(self, event: Any) -> None: ...


class Subscriber(Protocol):
    """A connection that receives a session's outgoing messages."""

    def send_frames(self, frames: Sequence[str | bytes]) -> None: ...


class Session:
    """A session: id, document, lock, timers and subscribers."""

    def __init__(
        self,
        session_id: str,
        document: Document,
        context: SessionContext,
        *,
        ids: MessageIds,
        clock: Callable[[], float] = time.monotonic,
        executor: Executor | None = None,
        app: str = "",
        watch: SessionWatch | None = None,
    ) -> None:
        self.id = session_id
        self.app = app
        self.watch = watch if watch is not None else SessionWatch()
        self.document = document
        self.context = context
        self.destroyed = False
        self.resumable = False  # a websocket opened it with a valid token: expired tokens may resume it
        self.changes: ChangeRecorder | None = None  # the session store's log of this document's changes
        self._ids = ids
        self._clock = clock
        self._executor = executor
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._batch: _LoopBatch | None = None  # the worker call now running, see `_on_loop`
        self._subscribers: set[Subscriber] = set()
        self._lock = asyncio.Lock()
        self._locked = False
        self._patch_origin: Subscriber | None = None
        self._busy = 0
        self.held_seconds = 0.0  # how long the last locked operation held the lock (read right after it)
        self._expiration_blocks = 0
        self._last_unsubscribe = clock()
        self.created = self._last_unsubscribe  # clock values, for the admin view
        self.last_activity = self.created  # the last message received or callback run
        self._callbacks = SessionCallbacks(
            self.run_locked, document, self.label, report=self._callback_ran, app=app, session_id=session_id
        )
        context.attach(self)
        document.callbacks.on_change_dispatch_to(self)
        for callback_obj in document.session_callbacks:
            self._callbacks.add(callback_obj)

    @property
    def label(self) -> str:
        """How logs name this session: its app and the start of its id."""
        return f"app {self.app}, session {self.id[:12]!r}"

    # -- Bokeh's document seam ---------------------------------------------------

    def _document_patched(self, event: Any) -> None:
        if not self._locked:
            raise RuntimeError(
                f"session {self.id!r}: the document was changed outside a locked callback; from another "
                "thread or a without_document_lock callback, use doc.add_next_tick_callback() instead"
            )
        if self.changes is not None:
            self.changes.record(event)
        if not self._subscribers:
            self.document.models.flush_synced()
            return
        skip = self._patch_origin if event.setter is self else None
        targets = [subscriber for subscriber in self._subscribers if subscriber is not skip]
        if not targets:  # only the connection the change came from: Bokeh encodes nothing either
            return
        content, buffers = wire.encode_events(self.document, [event])
        frames = encode(patch_doc(self._ids(), content, buffers))
        for subscriber in targets:
            self._on_loop(subscriber.send_frames, frames)

    def _session_callback_added(self, event: Any) -> None:
        self._on_loop(self._callbacks.add, event.callback)

    def _session_callback_removed(self, event: Any) -> None:
        self._on_loop(self._callbacks.remove, event.callback)

    def _on_loop(self, func: Callable[..., Any], *args: Any) -> None:
        """Run `func` on the event loop: now if we are on it, else next, in call order. From the
        worker thread running a locked call, right after that call (one loop wake-up, not one per
        patch; the patches still go out before the reply to the message that caused them)."""
        ident = threading.get_ident()
        if ident == self._loop_thread:
            func(*args)
            return
        batch = self._batch
        if batch is None or batch.thread != ident or not batch.add(func, args):
            self._loop.call_soon_threadsafe(func, *args)

    # -- locking ---------------------------------------------------------------

    async def run_locked(self, func: Callable[..., Any], *args: Any, inline: bool = False) -> Any:
        """Run `func(*args)` (awaiting what it returns) with the document lock held; on the worker
        threads, if the session has them, unless `inline` (Aperture's own work, not app code)."""
        if self.destroyed:
            log.debug("Ignoring a locked operation on destroyed session %r", self.id)
            self.held_seconds = 0.0
            return None
        self._busy += 1
        try:
            async with self._lock:
                if self.destroyed:  # retired while this operation waited for the lock (shutdown)
                    self.held_seconds = 0.0
                    return None
                self._locked = True
                acquired = perf_counter()
                try:
                    if self._executor is None or inline:
                        result = self._call(func, args)
                    else:  # app code runs off the event loop, so a slow callback stalls only its session
                        batch = _LoopBatch()
                        timer = self._loop.call_later(BATCH_WINDOW, batch.run)
                        try:
                            result = await self._loop.run_in_executor(
                                self._executor, self._call_batched, batch, func, args
                            )
                        finally:
                            timer.cancel()
                            batch.run()
                    if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                        with patched(self.document):  # the stack is per task: safe across awaits
                            while asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                                with contained():
                                    result = await result
                    return result
                finally:
                    self._locked = False
                    self.held_seconds = perf_counter() - acquired
        finally:
            self._busy -= 1

    def _call_batched(self, batch: _LoopBatch, func: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        batch.thread = threading.get_ident()
        self._batch = batch
        fields = log_context.bind(app=self.app, session=self.id)  # context variables stay on the loop
        try:
            return self._call(func, args)
        finally:
            log_context.reset(fields)
            self._batch = None

    def _call(self, func: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        # Contained here, so a worker thread hands the loop an ordinary exception, never SystemExit.
        with contained(), patched(self.document):
            return func(*args)

    # -- protocol operations ---------------------------------------------------

    async def pull(self) -> tuple[RawJSON, list[Buffer]]:
        """The document for PULL-DOC-REPLY. Serializing runs no app code: it runs on the event loop,
        as in Bokeh, while this app's last one took under `INLINE_PULL_SECONDS`; a handoff to a
        worker thread and back costs more CPU than a small document's whole serialization. A
        bigger document is serialized on the worker threads, where the event loop keeps its turns."""
        inline = _pull_seconds.get(self.app, 0.0) < INLINE_PULL_SECONDS
        result: tuple[RawJSON, list[Buffer]] = await self.run_locked(self._encode_document, inline=inline)
        return result

    def _encode_document(self) -> tuple[RawJSON, list[Buffer]]:
        start = perf_counter()
        try:
            return wire.encode_document(self.document)
        finally:
            _pull_seconds[self.app] = perf_counter() - start

    async def push(self, doc_json: Any, buffers: Sequence[Buffer]) -> None:
        await self.run_locked(self.document.replace_with_json, wire.incoming(doc_json, buffers))

    async def patch(self, content: Any, buffers: Sequence[Buffer], origin: Subscriber) -> None:
        payload = wire.incoming(content, buffers)

        def apply() -> None:
            self._patch_origin = origin
            try:
                self.document.apply_json_patch(payload, setter=self)  # type: ignore[arg-type]
            finally:
                self._patch_origin = None

        await self.run_locked(apply)

    # -- subscribers and lifetime -------------------------------------------------

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.add(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)
        self._last_unsubscribe = self._clock()

    @property
    def connection_count(self) -> int:
        return len(self._subscribers)

    def idle_seconds(self) -> float:
        """Seconds since the last connection left (or since creation)."""
        return self._clock() - self._last_unsubscribe

    @property
    def busy(self) -> bool:
        return self._busy > 0

    @property
    def in_flight(self) -> int:
        """Messages and callbacks running or waiting for this session's lock now."""
        return self._busy

    def touch(self) -> None:
        """Note activity: a message arrived or a callback ran."""
        self.last_activity = self._clock()

    def _callback_ran(self, kind: str, name: str, seconds: float, raised: bool, locked: bool) -> None:
        # A locked callback counts from when it got the lock: waiting for another one is not its cost.
        self.last_activity = self._clock()
        self.watch.callback_ran(
            self.app, self.id, kind, name, self.held_seconds if locked else seconds, raised
        )

    # -- what code written for Bokeh's ServerSession uses (Panel) ------------------------

    def block_expiration(self) -> None:
        """Keep the session from being discarded as unused until `unblock_expiration`."""
        self._expiration_blocks += 1

    def unblock_expiration(self) -> None:
        self._expiration_blocks = max(0, self._expiration_blocks - 1)

    @property
    def expiration_blocked(self) -> bool:
        return self._expiration_blocks > 0

    @property
    def _subscribed_connections(self) -> tuple[EventSink, ...]:
        # Panel's `unlocked()` holds a document's events and writes them to these itself.
        return (EventSink(self),)

    def send_events(self, events: Sequence[Any]) -> None:
        """Send document events that were applied but held back from `_document_patched` (by
        Panel's `unlocked()`, on the loop thread) to every subscriber, as one PATCH-DOC."""
        if self.changes is not None:
            for event in events:
                self.changes.record(event)
        if not self._subscribers:
            self.document.models.flush_synced()
            return
        content, buffers = wire.encode_events(self.document, events)
        frames = encode(patch_doc(self._ids(), content, buffers))
        for subscriber in tuple(self._subscribers):
            self._on_loop(subscriber.send_frames, frames)

    def notify_connection_lost(self) -> None:
        from bokeh.events import ConnectionLost

        with contained(), patched(self.document):
            self.document.callbacks.trigger_event(ConnectionLost())

    async def stop_callbacks_when_idle(self) -> None:
        """Cancel every timer once the locked operations running or queued now have ended, so no
        callback is cut off mid-run; messages are still handled. For shutdown."""
        async with self._lock:
            self._callbacks.remove_all()

    async def retire_when_idle(self) -> None:
        """`retire` once the locked operations running or queued now have ended. For shutdown."""
        async with self._lock:
            self.retire()

    def retire(self) -> None:
        """Stop timers and refuse further locked work; the context reports `destroyed`.

        The document (and the app module's globals) stay intact until `release`, so
        `on_session_destroyed` hooks that run in between can still use them (the document's
        own callbacks run after `detach_models`).
        """
        self.destroyed = True
        self._callbacks.remove_all()
        self.context.mark_destroyed()

    def release(self) -> None:
        """Free the document, its models and the app modules made for it, at once.

        Like `Document.destroy`, minus its full `gc.collect()` and the module-referrer scan
        (`gc.get_referrers`), both O(heap) per session: under churn they stalled every other
        session for seconds. Instead the reference cycles are cut, so that reference counting
        frees the session, its document and the request it keeps (headers, cookies) as soon as
        its last holder lets go. Left to the cyclic collector, dead sessions waited for a full
        collection, a hundred and more at a time under churn, and raised the peak memory that
        the allocator keeps afterwards (bench S11).
        """
        doc = self.document
        models = [*doc.models, *doc.config.references()]
        doc.remove_on_change(self)
        # Bokeh's wrapper of each timer callback holds the document; removing them the public way
        # would run the app's on_change callbacks from here, so the set is emptied directly.
        doc.callbacks._session_callbacks.clear()
        doc.callbacks.destroy()
        doc.models.destroy()
        for model in models:  # a property's container value points back at its model (`_owners`)
            model._property_values.clear()
            model._unstable_default_values.clear()
            model._unstable_themed_values.clear()
            # Python callbacks hold app objects and often the document; a model kept from outside
            # (Panel's per-document `pn.state` registries hold their values strongly) must not
            # keep the document and everything in it alive.
            model._callbacks.clear()
            model._event_callbacks.clear()
        modules = doc.modules._modules  # the per-session `bokeh_app_*` modules (Bokeh has no public list)
        for module in modules:
            sys.modules.pop(module.__name__, None)
            module.__dict__.clear()
        modules.clear()
        self.context.detach()  # the context and the timers point back at this session
        self._callbacks.detach()


def detach_models(document: Document) -> None:
    """Take every model out of `document`, keeping the models' values, the roots and the app's globals.

    Bokeh runs a document's own `on_session_destroyed` callbacks only after its teardown has
    detached the models from it, and Panel's callbacks rely on that: with `model.document`
    still set, Panel's `_server_destroy` deleted its record of a document twice and raised
    `KeyError`, skipping the rest of its clean-up. Unlike Bokeh's teardown, property values
    stay readable, and a change made from a callback reaches no session.
    """
    for model in [*document.models, *document.config.references()]:
        model.document = None

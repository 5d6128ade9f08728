"""`SessionRegistry`: the live sessions of one app route in this process.

Creation is coalesced: concurrent requests for one id wait for the same creation,
and a creation that fails leaves nothing behind (the next request tries afresh,
instead of hanging like the reference). Unused sessions - no connections for longer
than the configured lifetime, no locked operation running, expiration not blocked - are
destroyed by `discard_unused`, which the server calls periodically. Builds (timed), failed
builds and destructions are reported to the server's observer.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from typing import Any

from bokeh.document import Document

from aperture.apps import model_ids, panel_support
from aperture.apps.runner import AppRunner
from aperture.errors import AppFailedError, SessionError
from aperture.operations.observer import Observer
from aperture.protocol import MessageIds
from aperture.sessions.context import RequestData, ServerContext, SessionContext
from aperture.sessions.session import Session, detach_models
from aperture.sessions.watch import SessionWatch
from aperture.store.keeper import StoreKeeper
from aperture.store.redis_store import SessionRecord
from aperture.store.snapshot import RestoreMismatch, StoredState, baseline_of, restore

log = logging.getLogger("aperture.sessions")


class SessionRegistry:
    """Sessions of one app, by id."""

    def __init__(
        self,
        runner: AppRunner,
        *,
        ids: MessageIds,
        clock: Callable[[], float] = time.monotonic,
        logout_url: str | None = None,
        executor: Executor | None = None,
        keeper: StoreKeeper | None = None,
        observer: Observer | None = None,
        slow_callback_ms: int = 0,
    ) -> None:
        self.runner = runner
        self.keeper = keeper
        self.watch = SessionWatch(observer, slow_callback_ms)
        self.observer = self.watch.observer
        self._executor = executor
        self.server_context = ServerContext(self)
        self._ids = ids
        self._clock = clock
        self._logout_url = logout_url
        self._sessions: dict[str, Session] = {}
        self._pending: dict[str, asyncio.Future[Session]] = {}
        self.hooks_running: set[str] = set()  # during shutdown, for the watchdog's report

    @property
    def url(self) -> str:
        return self.runner.route

    @property
    def _url(self) -> str:  # what Panel reads of Bokeh's ApplicationContext (see apps/panel_support)
        return self.runner.route

    def live_sessions(self) -> list[Session]:
        return list(self._sessions.values())

    def get(self, session_id: str) -> Session | None:
        return self._sessions.get(session_id)

    async def get_or_create(
        self,
        session_id: str,
        *,
        request: RequestData | None,
        token: str | None,
        payload: Mapping[str, Any],
        stored: tuple[SessionRecord, StoredState] | None = None,
        keep: bool = True,
    ) -> Session:
        """The session with this id, created (app code run once) if it does not exist.

        With a session store, a new session is registered as this process's before it is returned
        (unless `keep` is False: a copy for a page whose session another live process owns), or,
        given `stored`, rebuilt from the store's record of a session this process just took over.
        """
        if not session_id:
            raise SessionError("session id must not be empty")
        session = self._sessions.get(session_id)
        if session is not None:
            return session
        pending = self._pending.get(session_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Session] = asyncio.get_running_loop().create_future()
        self._pending[session_id] = future
        start = time.perf_counter()
        try:
            session = await self._create(session_id, request, token, payload)
            if self.keeper is not None:
                try:
                    await self._keep(session, stored, keep)
                except _RestoreBroken:  # half restored: start again from a fresh build
                    await self._drop_unpublished(session)
                    session = await self._create(session_id, request, token, payload)
                    await self._keep(session, None, keep, replace=True)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # consumed here; waiters get it through their own await
            raise
        finally:
            del self._pending[session_id]
        self._sessions[session_id] = session
        future.set_result(session)
        self.observer.session_created(self.runner.route, time.perf_counter() - start)
        return session

    async def _create(
        self, session_id: str, request: RequestData | None, token: str | None, payload: Mapping[str, Any]
    ) -> Session:
        doc = Document()
        if self.keeper is not None:  # a rebuild must give the models the same ids
            model_ids.attach(doc, model_ids.IdSource(self.runner.route, session_id))
        context = SessionContext(
            self.server_context,
            session_id,
            doc,
            request=request,
            token=token,
            token_payload=payload,
            logout_url=self._logout_url,
        )
        doc._session_context = weakref.ref(context)
        await self.runner.session_created(context)
        failure = self.runner.build_document(doc, session_id)
        if failure is not None:
            self.observer.session_build_failed(self.runner.route)
            context.mark_destroyed()
            await self._run_destroyed_hooks(context)
            doc.modules.destroy()
            raise AppFailedError(failure.summary, failure.detail)
        return Session(
            session_id,
            doc,
            context,
            ids=self._ids,
            clock=self._clock,
            executor=None if panel_support.is_panel_document(doc) else self._executor,
            app=self.runner.route,
            watch=self.watch,
        )

    async def _keep(
        self,
        session: Session,
        stored: tuple[SessionRecord, StoredState] | None,
        keep: bool,
        replace: bool = False,
    ) -> None:
        """Put a new session in the store's care: restore its stored state, or register it."""
        assert self.keeper is not None
        ids = model_ids.source_of(session.document)
        assert ids is not None
        baseline = baseline_of(session.document)
        if stored is not None:
            record, state = stored
            ids.skip_past(max([record.next_number, *filter(None, map(ids.number_of, state.models))]))
            session.resumable = record.resumable
        if not keep:
            return
        session.changes = self.keeper.keep(session, self.runner.route, ids, baseline)
        if stored is not None and await self._restore(session, baseline, stored[1]):
            self.keeper.mark_registered(session, stored_models=stored[1].models)
        else:
            await self.keeper.register(session, replace=replace or stored is not None)

    async def _drop_unpublished(self, session: Session) -> None:
        if self.keeper is not None:
            self.keeper.ended(session)
        session.retire()
        await self._run_destroyed_hooks(session.context)
        session.release()

    async def _restore(self, session: Session, baseline: Any, state: StoredState) -> bool:
        label = session.label
        try:
            report = await session.run_locked(restore, session.document, baseline, state)
        except RestoreMismatch as exc:
            log.warning(
                "Could not restore %s from the session store: %s; serving a fresh document", label, exc
            )
            return False
        except Exception as exc:
            log.error(
                "Restoring %s from the session store failed (%s: %s); serving a fresh document",
                label,
                type(exc).__name__,
                exc,
                exc_info=True,
            )
            self.observer.error("store")
            raise _RestoreBroken from exc
        if report is None:
            return False
        log.info(
            "Restored %s from the session store (%d properties, %d models made after the build%s)",
            label,
            report.properties,
            report.created,
            f", {report.callback_errors} callbacks raised" if report.callback_errors else "",
        )
        return True

    async def discard_unused(self, lifetime_seconds: float) -> int:
        """Destroy sessions unused for longer than the lifetime; returns how many."""
        doomed = [
            s
            for s in self._sessions.values()
            if s.connection_count == 0
            and not (s.busy or s.expiration_blocked)
            and s.idle_seconds() > lifetime_seconds
        ]
        for session in doomed:
            if session.connection_count or session.busy or session.expiration_blocked:
                continue  # came back to life while earlier sessions were being destroyed
            log.debug("Discarding session %r, unused for %.1f s", session.id, session.idle_seconds())
            await self.destroy(session)
        return len(doomed)

    async def destroy(self, session: Session) -> None:
        if self._sessions.get(session.id) is session:
            del self._sessions[session.id]
        if self.keeper is not None:
            self.keeper.ended(session)
        if session.destroyed:
            return
        session.retire()
        self.observer.session_destroyed(self.runner.route)
        await self._run_destroyed_hooks(session.context)
        session.release()

    async def _run_destroyed_hooks(self, context: SessionContext) -> None:
        """Bokeh's order without its emptied document: the handlers' `on_session_destroyed`
        hooks see the session whole; then the models leave the document (values intact) and the
        document's own callbacks run, as Panel's clean-up expects. The app's module globals stay
        for both, until `Session.release`."""
        await self.runner.session_destroyed(context)
        detach_models(context.document)
        await self.runner.document_destroyed(context)

    async def destroy_all(
        self, work_deadline: float | None = None, hook_deadline: float | None = None
    ) -> list[str]:
        """Destroy every session, for shutdown; returns what was left running, one line each.

        Sessions are handled concurrently, so a stuck one delays no other. Each is retired once
        the locked operations running or queued on it have ended (its callback returned), or at
        `work_deadline` (a `time.monotonic()` value) regardless, leaving that callback to run
        on; then its `on_session_destroyed` hooks run, cut off at `hook_deadline`. Sessions that
        were still being created are destroyed once they exist.
        """
        left: list[str] = []
        for _ in range(10):  # each round can only find sessions whose creation was under way
            if self._pending:
                await asyncio.wait(list(self._pending.values()), timeout=seconds_left(work_deadline))
            sessions = list(self._sessions.values())
            if not sessions:
                break
            done = await asyncio.gather(*(self._shut_down(s, work_deadline, hook_deadline) for s in sessions))
            left.extend(line for line in done if line)
        return left

    async def _shut_down(
        self, session: Session, work_deadline: float | None, hook_deadline: float | None
    ) -> str:
        if self._sessions.get(session.id) is session:
            del self._sessions[session.id]
        if session.destroyed:
            return ""
        label = f"session {session.id[:12]!r} of app {self.url}"
        left = ""
        self.observer.session_destroyed(self.runner.route)
        try:
            await asyncio.wait_for(session.retire_when_idle(), seconds_left(work_deadline))
        except TimeoutError:
            session.retire()
            left = f"a callback of {label} is still running"
            log.error(
                "A callback of %s is still running at the shutdown deadline; destroying it anyway", label
            )
        self.hooks_running.add(f"on_session_destroyed of {label}")
        try:
            await asyncio.wait_for(self._run_destroyed_hooks(session.context), seconds_left(hook_deadline))
        except TimeoutError:
            log.error("on_session_destroyed of %s did not finish by the shutdown deadline", label)
            return left or f"on_session_destroyed of {label} is still running"
        finally:
            self.hooks_running.discard(f"on_session_destroyed of {label}")
        if not left:  # a callback still running may yet touch the document
            session.release()
        return left


class _RestoreBroken(Exception):
    """Restoring failed half-way: the document must be built afresh."""


def seconds_left(deadline: float | None, floor: float = 0.05) -> float | None:
    """Seconds until `deadline` (time.monotonic), at least `floor` so that work already free to
    finish gets its turn; None (no limit) for no deadline."""
    return None if deadline is None else max(floor, deadline - time.monotonic())

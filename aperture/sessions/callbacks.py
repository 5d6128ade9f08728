"""Running a session's next-tick, timeout and periodic callbacks on the event loop.

Bokeh hands the session callback objects (via `SessionCallbackAdded`); this module
schedules them with asyncio. Each run goes through the session's document lock
unless the callback was marked with `without_document_lock`. One-shot callbacks
forget their handle before they run, so their own removal never cancels them; a
periodic callback's next run starts one period after the previous run began, but
never before it finished (no pile-up). Errors, `sys.exit()` and other `BaseException`s
raised by the callback included, are logged with the session's app and id and never
stop the timer or the event loop; a cancellation of the timer itself stays one. Each run is
timed and reported (to the session, which counts a locked run from when it got the lock) with its kind (`periodic`, `timeout`, `next_tick`); log lines made meanwhile carry the
app and session (see `aperture.operations.log_context`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from time import perf_counter
from typing import Any

from bokeh.document.locking import UnlockedDocumentProxy

from aperture.apps.curdoc import patched
from aperture.apps.guard import contained
from aperture.operations import log_context

log = logging.getLogger("aperture.sessions")

Report = Callable[[str, str, float, bool, bool], None]
"""Told of each run, on the loop right after it: (kind, callback name, seconds, raised, locked)."""


def _ignore(kind: str, name: str, seconds: float, raised: bool, locked: bool) -> None:
    pass


class SessionCallbacks:
    """The live timers of one session."""

    def __init__(
        self,
        run_locked: Callable[..., Any],
        document: Any,
        label: str = "",
        *,
        report: Report = _ignore,
        app: str = "",
        session_id: str = "",
    ) -> None:
        self._run_locked = run_locked
        self._document = document
        self._label = label
        self._report = report
        self._app = app
        self._session_id = session_id
        self._handles: dict[str, asyncio.TimerHandle | asyncio.Handle | asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def add(self, callback_obj: Any) -> None:
        loop = asyncio.get_running_loop()
        cid = str(callback_obj.id)
        period = getattr(callback_obj, "period", None)
        timeout = getattr(callback_obj, "timeout", None)
        if period is not None:
            task = loop.create_task(self._periodic(callback_obj, period / 1000))
            self._handles[cid] = task
        elif timeout is not None:
            self._handles[cid] = loop.call_later(timeout / 1000, self._fire_once, callback_obj, "timeout")
        else:
            self._handles[cid] = loop.call_soon(self._fire_once, callback_obj, "next_tick")

    def remove(self, callback_obj: Any) -> None:
        handle = self._handles.pop(str(callback_obj.id), None)
        if handle is not None:
            handle.cancel()

    def remove_all(self) -> None:
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()

    def detach(self) -> None:
        """After `remove_all`, let go of the session and its document (they refer to this object)."""
        self._run_locked = _released
        self._report = _ignore
        self._document = None

    def _fire_once(self, callback_obj: Any, kind: str) -> None:
        self._handles.pop(str(callback_obj.id), None)
        task = asyncio.get_running_loop().create_task(self._invoke(callback_obj, kind))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _periodic(self, callback_obj: Any, period: float) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + period
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            await self._invoke(callback_obj, "periodic")
            if _cancelling():
                raise asyncio.CancelledError  # removed while app code ran, and the app swallowed it
            due = max(due + period, loop.time())

    async def _invoke(self, callback_obj: Any, kind: str) -> None:
        func = callback_obj.callback
        raised = False
        locked = not getattr(func, "nolock", False)
        start = perf_counter()
        fields = log_context.bind_only(app=self._app, session=self._session_id)  # not the page's request
        try:
            try:
                if not locked:
                    with contained(), patched(UnlockedDocumentProxy(self._document)):
                        result = func()
                        while asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                            result = await result
                else:
                    await self._run_locked(func)
            except asyncio.CancelledError:
                raise
            except Exception:
                raised = True
                name = getattr(func, "__name__", func)
                log.exception("Error in session callback %r of %s", name, self._label)
            self._report(kind, str(getattr(func, "__name__", "?")), perf_counter() - start, raised, locked)
        finally:
            log_context.reset(fields)


async def _released(*args: Any) -> None:
    """What a detached timer list runs instead of the session's locked work: nothing."""


def _cancelling() -> bool:
    # Not a local of `_periodic`: the task's final CancelledError keeps that frame, and a frame
    # holding its own task is a cycle that kept the session's document until a full collection.
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0

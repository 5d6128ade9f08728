"""Running a session's next-tick, timeout and periodic callbacks on the event loop.

Bokeh hands the session callback objects (via `SessionCallbackAdded`); this module
schedules them with asyncio. Each run goes through the session's document lock
unless the callback was marked with `without_document_lock`. One-shot callbacks
forget their handle before they run, so their own removal never cancels them; a
periodic callback's next run starts one period after the previous run began, but
never before it finished (no pile-up). Exceptions are logged and never stop the loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from bokeh.document.locking import UnlockedDocumentProxy
from bokeh.io.doc import patch_curdoc

log = logging.getLogger("aperture.sessions")


class SessionCallbacks:
    """The live timers of one session."""

    def __init__(self, run_locked: Callable[..., Any], document: Any) -> None:
        self._run_locked = run_locked
        self._document = document
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
            self._handles[cid] = loop.call_later(timeout / 1000, self._fire_once, callback_obj)
        else:
            self._handles[cid] = loop.call_soon(self._fire_once, callback_obj)

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

    def _fire_once(self, callback_obj: Any) -> None:
        self._handles.pop(str(callback_obj.id), None)
        task = asyncio.get_running_loop().create_task(self._invoke(callback_obj))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _periodic(self, callback_obj: Any, period: float) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + period
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            await self._invoke(callback_obj)
            due = max(due + period, loop.time())

    async def _invoke(self, callback_obj: Any) -> None:
        func = callback_obj.callback
        try:
            if getattr(func, "nolock", False):
                with patch_curdoc(UnlockedDocumentProxy(self._document)):
                    result = func()
                    while asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                        result = await result
            else:
                await self._run_locked(func)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("Error in session callback %r", getattr(func, "__name__", func))

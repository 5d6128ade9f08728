"""Run one application's code for the server: build documents, call lifecycle hooks.

`AppRunner` wraps a Bokeh `Application` and fixes the seams the reference leaves
loose: `curdoc()` is the session's document while any handler runs (function apps
included), hook modules may define `async def` hooks and they are awaited, and a
handler that fails is reported as an `AppFailure` (a one-paragraph summary for the
page, the traceback for the log) instead of a half-built page. No method lets app
code's `sys.exit()`, `KeyboardInterrupt` or other `BaseException` out (see `guard`):
they fail the build, request or hook that raised them, like any other app error.
"""

from __future__ import annotations

import inspect
import logging
import traceback
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import bokeh.io.state as bokeh_state
from bokeh.application import Application
from bokeh.document import Document
from bokeh.settings import settings

from aperture.apps import panel_support
from aperture.apps.curdoc import patched
from aperture.apps.guard import AppExit, contained
from aperture.errors import AppFailedError

log = logging.getLogger("aperture.apps")


@dataclass(frozen=True)
class AppFailure:
    """Why an app could not build a session's document."""

    summary: str
    detail: str


async def _settle(result: Any) -> None:
    # Hook wrappers may return the user's coroutine instead of awaiting it.
    while inspect.isawaitable(result):
        with contained():
            result = await result


def _session(context: Any) -> str:
    return repr(str(context.id)[:12])


class AppRunner:
    """The server's view of one Application mounted at `route`."""

    def __init__(self, route: str, application: Application) -> None:
        self.route = route
        self.application = application

    @property
    def static_path(self) -> str | None:
        path: str | None = self.application.static_path
        return path

    def metadata(self) -> Any:
        data = self.application.metadata
        if callable(data):
            with contained():
                data = data()
        return {} if data is None else data

    def build_document(self, doc: Document, session_id: str = "") -> AppFailure | None:
        """Run every handler on `doc`; the first failing handler stops the build."""
        default = _default_document()
        try:
            with contained(), patched(doc):
                for handler in self.application.handlers:
                    handler.modify_document(doc)
                    if handler.failed:
                        log.error(
                            "Error running app %s for session %r: %s\n%s",
                            self.route,
                            session_id[:12],
                            handler.error,
                            handler.error_detail,
                        )
                        summary = str(handler.error).split("\nFile '", 1)[0]  # the exception, not the frame
                        return AppFailure(summary, f"{handler.error}\n{handler.error_detail}")
        except Exception as exc:  # Bokeh's handlers trap only Exceptions, and only when asked to
            log.error(
                "Error running app %s for session %r: %s", self.route, session_id[:12], exc, exc_info=True
            )
            return AppFailure(_summary(exc), _traceback(exc))
        finally:
            _restore_default_document(doc, default)
        if not panel_support.document_built(doc, self.route) and settings.perform_document_validation():
            doc.validate()
        return None

    def process_request(self, request: Any) -> dict[str, Any]:
        """The `process_request` hooks' output for a page's token; raises AppFailedError if one fails."""
        try:
            with contained():
                data: dict[str, Any] = self.application.process_request(request)
        except Exception as exc:
            log.error("Error in process_request of app %s: %s", self.route, exc, exc_info=True)
            raise AppFailedError(_summary(exc), _traceback(exc)) from exc
        return data

    def server_loaded(self, server_context: Any) -> list[Awaitable[None]]:
        """Run `on_server_loaded` of each handler; return awaitables an async hook left behind.

        The awaitables never raise (a failing hook is logged), except to pass on a cancellation.
        """
        pending: list[Awaitable[None]] = []
        for handler in self.application.handlers:
            try:
                with contained():
                    result: Any = handler.on_server_loaded(server_context)  # type: ignore[func-returns-value]
            except Exception:
                log.exception("Error in on_server_loaded of app %s", self.route)
                continue
            if inspect.isawaitable(result):
                pending.append(self._finish_server_loaded(result))
        return pending

    async def _finish_server_loaded(self, result: Awaitable[Any]) -> None:
        try:
            await _settle(result)
        except Exception:
            log.exception("Error in on_server_loaded of app %s", self.route)

    async def server_unloaded(self, server_context: Any) -> None:
        for handler in self.application.handlers:
            try:
                with contained():
                    result: Any = handler.on_server_unloaded(server_context)  # type: ignore[func-returns-value]
                await _settle(result)
            except Exception:
                log.exception("Error in on_server_unloaded of app %s", self.route)

    async def session_created(self, session_context: Any) -> None:
        await panel_support.session_created(session_context, self.route)
        for handler in self.application.handlers:
            try:
                with contained():
                    result = handler.on_session_created(session_context)
                await _settle(result)
            except Exception:
                log.exception(
                    "Error in on_session_created of app %s, session %s", self.route, _session(session_context)
                )

    async def session_destroyed(self, session_context: Any) -> None:
        """The handlers' `on_session_destroyed` hooks (`app_hooks.py` and the like)."""
        where = f"of app {self.route}, session {_session(session_context)}"
        for handler in self.application.handlers:
            try:
                with contained():
                    result = handler.on_session_destroyed(session_context)
                await _settle(result)
            except Exception:
                log.exception("Error in on_session_destroyed %s", where)

    async def document_destroyed(self, session_context: Any) -> None:
        """The document's own `on_session_destroyed` callbacks (`doc.on_session_destroyed`)."""
        where = f"of app {self.route}, session {_session(session_context)}"
        document = session_context.document
        callbacks = document.session_destroyed_callbacks
        document.session_destroyed_callbacks = set()
        for callback in callbacks:
            try:
                with contained():
                    result = callback(session_context)
                await _settle(result)
            except Exception:
                log.exception("Error in a document on_session_destroyed callback %s", where)


def _default_document() -> Document | None:
    """Bokeh's process-wide default document (`curdoc()` outside a session), not creating one."""
    state = bokeh_state._STATE
    return None if state is None else state.document


def _restore_default_document(doc: Document, default: Document | None) -> None:
    """Undo app code that made the session's document the process-wide default.

    Panel's script runner "restores" the `curdoc()` it found, which here is the session's
    document, as Bokeh's default: that would keep the session alive after it ends, and hand
    it to any later `curdoc()` outside a session.
    """
    state = bokeh_state._STATE
    if state is not None and state.document is doc:
        state.document = default if default is not None else Document()


def _summary(exc: Exception) -> str:
    return str(exc) if isinstance(exc, AppExit) else f"{type(exc).__name__}: {exc}"


def _traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))

"""Run one application's code for the server: build documents, call lifecycle hooks.

`AppRunner` wraps a Bokeh `Application` and fixes the seams the reference leaves
loose: `curdoc()` is the session's document while any handler runs (function apps
included), hook modules may define `async def` hooks and they are awaited, and a
handler that fails is reported as an `AppFailure` (a one-paragraph summary for the
page, the traceback for the log) instead of a half-built page.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import Any

from bokeh.application import Application
from bokeh.document import Document
from bokeh.io.doc import patch_curdoc
from bokeh.settings import settings

log = logging.getLogger("aperture.apps")


@dataclass(frozen=True)
class AppFailure:
    """Why an app could not build a session's document."""

    summary: str
    detail: str


async def _settle(result: Any) -> None:
    # Hook wrappers may return the user's coroutine instead of awaiting it.
    while inspect.isawaitable(result):
        result = await result


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
            data = data()
        return {} if data is None else data

    def build_document(self, doc: Document) -> AppFailure | None:
        """Run every handler on `doc`; the first failing handler stops the build."""
        with patch_curdoc(doc):
            for handler in self.application.handlers:
                handler.modify_document(doc)
                if handler.failed:
                    log.error("Error running app %s: %s\n%s", self.route, handler.error, handler.error_detail)
                    summary = str(handler.error).split("\nFile '", 1)[0]  # the exception, not the frame
                    return AppFailure(summary, f"{handler.error}\n{handler.error_detail}")
        if settings.perform_document_validation():
            doc.validate()
        return None

    def process_request(self, request: Any) -> dict[str, Any]:
        data: dict[str, Any] = self.application.process_request(request)
        return data

    def server_loaded(self, server_context: Any) -> list[Any]:
        """Run `on_server_loaded` of each handler; return awaitables an async hook left behind."""
        pending: list[Any] = []
        for handler in self.application.handlers:
            try:
                result: Any = handler.on_server_loaded(server_context)  # type: ignore[func-returns-value]
            except Exception:
                log.exception("Error in on_server_loaded of app %s", self.route)
                continue
            if inspect.isawaitable(result):
                pending.append(result)
        return pending

    async def server_unloaded(self, server_context: Any) -> None:
        for handler in self.application.handlers:
            try:
                await _settle(handler.on_server_unloaded(server_context))  # type: ignore[func-returns-value]
            except Exception:
                log.exception("Error in on_server_unloaded of app %s", self.route)

    async def session_created(self, session_context: Any) -> None:
        for handler in self.application.handlers:
            try:
                await _settle(handler.on_session_created(session_context))
            except Exception:
                log.exception("Error in on_session_created of app %s", self.route)

    async def session_destroyed(self, session_context: Any) -> None:
        """The handlers' hooks, then the document's own `on_session_destroyed` callbacks."""
        for handler in self.application.handlers:
            try:
                await _settle(handler.on_session_destroyed(session_context))
            except Exception:
                log.exception("Error in on_session_destroyed of app %s", self.route)
        document = session_context.document
        callbacks = document.session_destroyed_callbacks
        document.session_destroyed_callbacks = set()
        for callback in callbacks:
            try:
                await _settle(callback(session_context))
            except Exception:
                log.exception("Error in a document on_session_destroyed callback of app %s", self.route)

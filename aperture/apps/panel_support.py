"""Panel's own per-session set-up, for apps that use Panel; the one module that talks to Panel.

`panel serve` serves every app through Panel's Bokeh `Application` subclass
(`panel.io.application.Application`, also behind `pn.serve` and Panel's FastAPI integration).
Its `on_session_created` runs the callbacks registered with `pn.state.on_session_created` (and
process-wide `pn.state.on_session_destroyed`); its `initialize_document` hooks `pn.state.onload`
callbacks to the browser's `document_ready` event (which is also when Panel starts treating
the session as loaded), sets `pn.state.base_url`/`rel_path`, and renders a `pn.state.template`
the app filled but did not serve. `bokeh serve` uses Bokeh's `Application`, so none of that
happens there. Aperture keeps running the app's own handlers itself and calls these two public
methods of one Panel `Application` without handlers around them. A loaded session's changes
Panel writes to the session's connections itself (`unlocked()`), which `EventSink` takes in;
and Panel's documents must be changed on the thread that built them (`is_panel_document`).
Invariant: nothing here imports Panel unless the process already has (the app did), so plain
Bokeh apps never load it; and a failure here is logged, never fails the session.
"""

from __future__ import annotations

import logging
import sys
import weakref
from typing import Any

from bokeh.document import Document

from aperture.apps.curdoc import patched
from aperture.apps.guard import contained

log = logging.getLogger("aperture.apps")

_application: Any = None  # Panel's Application without handlers, made once Panel is imported
_unavailable = False  # this Panel has no such Application: do not try again
_documents: weakref.WeakSet[Document] = weakref.WeakSet()  # the ones Panel set up


class EventSink:
    """What a session's `_subscribed_connections` holds: all its connections, as one.

    Once a session is loaded, Panel's `unlocked()` holds the events of a change and writes them
    to the connections of Bokeh's `ServerSession` itself, dispatching on the type of each
    connection's `_socket`; this type is registered with Panel (`extra_socket_handlers`) so
    the events go to `send_events`, which sends them to every subscriber as one PATCH-DOC.
    """

    def __init__(self, session: Any) -> None:
        self._session = session
        self._socket = self

    def send_events(self, events: Any) -> list[Any]:
        self._session.send_events(events)
        return []  # nothing for Panel to await: the frames are queued


def _write_to_sink(conn: EventSink, events: Any = None, msg: Any = None) -> list[Any]:
    if events is None:  # only after `conn.protocol` made a Bokeh message, which a sink cannot
        raise TypeError("Aperture sessions take document events, not Bokeh protocol messages")
    return conn.send_events(events)


def panel_application() -> Any:
    """A handler-less `panel.io.application.Application` once this process imported Panel, else None.

    Asked per session: a script app imports Panel during its first session's build. If this
    Panel lacks what Aperture uses, that is logged once and Panel apps run as under `bokeh serve`.
    """
    global _application, _unavailable
    if _application is None and not _unavailable and "panel" in sys.modules:
        try:
            from panel.io.application import Application
            from panel.io.document import extra_socket_handlers

            # (Panel annotates the handlers as taking one argument; they take up to three)
            extra_socket_handlers[EventSink] = _write_to_sink  # type: ignore[assignment]
            _application = Application()  # type: ignore[no-untyped-call]
        except Exception:
            _unavailable = True
            log.exception("Panel's session set-up is unavailable; Panel apps run as under bokeh serve")
    return _application


async def session_created(session_context: Any, route: str) -> None:
    """Panel's part of a new session, before the app's own `on_session_created` hooks."""
    application = panel_application()
    if application is None:
        return
    try:
        with contained():
            await application.on_session_created(session_context)
    except Exception:
        log.exception("Error in Panel's on_session_created callbacks of app %s", route)


def document_built(doc: Document, route: str) -> bool:
    """Panel's part of a document the app's handlers have built; True if Panel did it.

    Panel's `initialize_document` ends with Bokeh's, which validates the document (the
    handlers, already run, are not Panel's), so the caller need not validate again. Then,
    as the page handler of `panel serve` does, the components' stylesheets are pointed at
    this server's copy of Panel's assets (`dist_url`) instead of Panel's CDN.
    """
    application = panel_application()
    if application is None:
        return False
    try:
        with contained(), patched(doc):
            application.initialize_document(doc)
            _serve_stylesheets_locally(doc)
    except Exception:
        log.exception("Error in Panel's per-session set-up of app %s; pn.state.onload may not run", route)
        return False
    _documents.add(doc)
    return True


def is_panel_document(doc: Document) -> bool:
    """Whether Panel set `doc` up. Panel then takes the thread that built the document (the
    event loop's) as the only one that may change it directly: from any other, it defers the
    change to a next-tick callback, expecting that to run there. So all of such a session's
    app code must run on the event loop, as under `panel serve`."""
    return doc in _documents


def _serve_stylesheets_locally(doc: Document) -> None:
    from panel import state
    from panel.io.resources import patch_model_css

    here = "static/extensions/panel/"  # relative: right behind --prefix; absolute for autoload.js
    dist_url = f"{state.rel_path}/{here}" if state.rel_path else here
    dist_url = doc.template_variables.setdefault("dist_url", dist_url)
    for root in doc.roots:
        patch_model_css(root, dist_url=dist_url)

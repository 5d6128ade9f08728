"""Model ids that a rebuilt session reproduces: `p<tag>-<n>`, counted per session.

Bokeh numbers models with one process-wide counter, so running an app twice - in two
processes, or after a restart - gives its models different ids. With a session store
(`aperture.store`), a session's document is rebuilt elsewhere by running the app again and
its stored property values are then applied by model id; that works only if the rebuilt
models get the ids the first run gave them. So while app code runs for a session, a model
created with `curdoc()` set to that session's document takes its id from that session's
`IdSource`: a tag derived from the app route and session id (unique per session, so ids
never collide across the sessions of a process, as Panel's per-root registries need) and a
counter. The same app building the same structure in the same order gets the same ids.

This is one of Aperture's patches of Bokeh globals (the others are the curdoc stack,
`apps/curdoc.py`, and the accelerators' `accelerate/construction.py`): `install()` replaces the `make_id` that `bokeh.model.model` calls;
outside a session with a source (module imports, `on_server_loaded`, sessions of a server
without a store) Bokeh's own `make_id` answers, unchanged.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import weakref
from typing import Any

import bokeh.io.doc as _bokeh_doc
import bokeh.model.model as _bokeh_model

_original_make_id: Any = _bokeh_model.make_id  # type: ignore[attr-defined]
_SOURCES: weakref.WeakKeyDictionary[Any, IdSource] = weakref.WeakKeyDictionary()


class IdSource:
    """The ids of one session's models, in creation order."""

    def __init__(self, route: str, session_id: str, start: int = 0) -> None:
        digest = hashlib.sha256(f"{route}\0{session_id}".encode()).hexdigest()
        self.tag = digest[:12]
        self._lock = threading.Lock()
        self._counter = itertools.count(start + 1)
        self.last = start

    def __call__(self) -> str:
        with self._lock:
            self.last = next(self._counter)
        return f"p{self.tag}-{self.last}"

    def skip_past(self, number: int) -> None:
        """Never hand out a number up to `number` again (ids restored from a store use them)."""
        with self._lock:
            if number > self.last:
                self.last = number
                self._counter = itertools.count(number + 1)

    def number_of(self, model_id: str) -> int | None:
        """The counter value in one of this source's ids, else None."""
        prefix = f"p{self.tag}-"
        if model_id.startswith(prefix) and model_id[len(prefix) :].isdigit():
            return int(model_id[len(prefix) :])
        return None


def attach(document: Any, source: IdSource) -> None:
    """Models made for `document` (while it is `curdoc()`) take their ids from `source`."""
    _SOURCES[document] = source


def source_of(document: Any) -> IdSource | None:
    return _SOURCES.get(document)


def _make_id() -> str:
    stack = _bokeh_doc._PATCHED_CURDOCS
    if len(stack):
        document = stack[-1]()
        document = getattr(document, "_doc", document)  # Bokeh's UnlockedDocumentProxy
        if document is not None:
            source = _SOURCES.get(document)
            if source is not None:
                return source()
    return str(_original_make_id())


def install() -> None:
    """Let session documents with a source number their models (once; idempotent)."""
    _bokeh_model.make_id = _make_id  # type: ignore[attr-defined]


def installed() -> bool:
    return _bokeh_model.make_id is _make_id  # type: ignore[attr-defined,comparison-overlap]

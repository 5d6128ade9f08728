"""Make `curdoc()` follow the task or thread that runs app code.

Bokeh keeps the stack behind `curdoc()` in one process-global list, so a patch only
holds for a synchronous call: inside an `async def` callback, or on a worker thread,
`curdoc()` would answer with the wrong document. This module swaps that list for a
stack kept in a `ContextVar`: every asyncio task and every thread sees its own stack,
so Aperture can keep a document patched across the awaits of an async callback. It is
the only place where Aperture patches a Bokeh global; `install()` is idempotent.
`patched()` is Bokeh's `patch_curdoc` made exception-safe: Bokeh's own skips the pop
when the code inside raises, which would leave stale entries on a worker thread's stack.
"""

from __future__ import annotations

import contextvars
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import bokeh.io.doc as _bokeh_doc

_STACK: contextvars.ContextVar[tuple[Any, ...]] = contextvars.ContextVar("aperture_curdoc_stack", default=())


class ContextLocalStack:
    """The list protocol Bokeh's `curdoc`/`patch_curdoc` use, stored per context."""

    def __len__(self) -> int:
        return len(_STACK.get())

    def __getitem__(self, index: int) -> Any:
        return _STACK.get()[index]

    def append(self, item: Any) -> None:
        _STACK.set((*_STACK.get(), item))

    def pop(self) -> Any:
        stack = _STACK.get()
        _STACK.set(stack[:-1])
        return stack[-1]


def install() -> None:
    """Replace Bokeh's global curdoc stack with the context-local one (once)."""
    if not isinstance(_bokeh_doc._PATCHED_CURDOCS, ContextLocalStack):
        _bokeh_doc._PATCHED_CURDOCS = ContextLocalStack()  # type: ignore[assignment]


@contextmanager
def patched(doc: Any) -> Iterator[None]:
    """`curdoc()` is `doc` inside; the stack is as it was afterwards, however the block ends.

    Restoring the depth also drops entries that Bokeh's `patch_curdoc` (used around app
    callbacks) left behind when app code raised inside it.
    """
    stack = _bokeh_doc._PATCHED_CURDOCS
    depth = len(stack)
    stack.append(weakref.ref(doc))
    try:
        yield
    finally:
        while len(stack) > depth:
            stack.pop()

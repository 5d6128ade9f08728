"""`Session.pull` serializes a small document on the event loop and a big one on the worker threads.

A handoff to a worker thread and back cost more CPU than serializing a small document (about a
tenth of a `hello` page view); Bokeh serializes on the event loop too. Documents whose last
serialization took `INLINE_PULL_SECONDS` or more go back to the worker threads.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import pytest
from bokeh.document import Document
from bokeh.models import Div

from aperture.protocol import MessageIds
from aperture.sessions import session as session_module
from aperture.sessions import wire
from aperture.sessions.context import SessionContext
from aperture.sessions.session import Session


def _session(app: str, executor: ThreadPoolExecutor | None) -> Session:
    doc = Document()
    doc.add_root(Div(text="hello"))
    context = SessionContext(SimpleNamespace(), "sid-" + app, doc, request=None, token=None, token_payload={})  # type: ignore[arg-type]
    return Session("sid-" + app, doc, context, ids=MessageIds(), executor=executor, app=app)


def _threads_of_pulls(monkeypatch: pytest.MonkeyPatch, delay: float) -> list[bool]:
    """Pull three times; for each, whether it ran on the event loop's thread."""
    on_loop: list[bool] = []
    real = wire.encode_document
    clock = [0.0]  # each serialization takes exactly `delay`, however busy the machine is

    def encode(doc: Document) -> Any:
        on_loop.append(threading.get_ident() == loop_thread)
        clock[0] += delay
        return real(doc)

    monkeypatch.setattr(wire, "encode_document", encode)
    monkeypatch.setattr(session_module, "perf_counter", lambda: clock[0])

    async def main() -> None:
        nonlocal loop_thread
        loop_thread = threading.get_ident()
        with ThreadPoolExecutor(2) as pool:
            session = _session(f"/app-{delay}", pool)
            for _ in range(3):
                content, buffers = await session.pull()
                assert '"roots"' in str(content) and buffers == []

    loop_thread = 0
    asyncio.run(main())
    return on_loop


def test_small_documents_are_serialized_on_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _threads_of_pulls(monkeypatch, 0.0) == [True, True, True]


def test_slow_serializations_move_to_the_worker_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    # the first pull of an app runs on the loop and is timed; later ones follow that time
    delay = session_module.INLINE_PULL_SECONDS * 2
    assert _threads_of_pulls(monkeypatch, delay) == [True, False, False]


def test_pull_output_is_unchanged() -> None:
    async def main() -> None:
        with ThreadPoolExecutor(1) as pool:
            session = _session("/same", pool)
            content, buffers = await session.pull()
            assert (content, buffers) == wire.encode_document(session.document)

    asyncio.run(main())

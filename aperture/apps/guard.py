"""Keep what app code raises inside the request or session that ran it.

`sys.exit()`, `KeyboardInterrupt` and any other `BaseException` that is not an
`Exception` would end Aperture's event loop (asyncio re-raises `SystemExit` and
`KeyboardInterrupt` out of the loop) or silently kill the task that ran the code.
`contained()` wraps every call into app code and turns such an exception into an
`AppExit`, an ordinary `Exception` that the existing error paths report like any
other app error. What is not the app's to stop passes through unchanged: a
cancellation of the running task (asyncio's task cancellation, e.g. at shutdown),
a coroutine being closed (`GeneratorExit`), and the `KeyboardInterrupt` that a
process-level SIGINT handler raises (a real Ctrl-C).
"""

from __future__ import annotations

import asyncio
import functools
import signal
from types import CodeType, TracebackType

APP_EXIT_HINT = "raised by app code; only this request or session fails"


class AppExit(Exception):
    """App code raised a `BaseException` that is not an `Exception`; `original` is that exception."""

    def __init__(self, original: BaseException) -> None:
        self.original = original
        name = type(original).__name__
        text = str(original)
        super().__init__(f"{name}: {text} ({APP_EXIT_HINT})" if text else f"{name} ({APP_EXIT_HINT})")


def _task_cancelled() -> bool:
    """True when the task running this code has been asked to cancel (so the error is ours)."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # a worker thread: no task there can be cancelled
        return False
    return task is not None and task.cancelling() > 0


def _handler_code(handler: object) -> CodeType | None:
    while isinstance(handler, functools.partial):
        handler = handler.func
    handler = getattr(handler, "__func__", handler)
    code = getattr(handler, "__code__", None)
    return code if isinstance(code, CodeType) else None


def _from_sigint_handler(exc: BaseException) -> bool:
    # A Python-level SIGINT handler (asyncio.run's) raises from its own frame, the innermost one.
    code = _handler_code(signal.getsignal(signal.SIGINT))
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return code is not None and tb is not None and tb.tb_frame.f_code is code


def passes_through(exc: BaseException) -> bool:
    """Whether `exc` keeps its normal meaning instead of becoming an app error."""
    if isinstance(exc, Exception):
        return True
    if isinstance(exc, GeneratorExit):
        return True
    if isinstance(exc, asyncio.CancelledError):
        return _task_cancelled()
    if isinstance(exc, KeyboardInterrupt):
        return _from_sigint_handler(exc)
    return False


class _Contained:
    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None and not passes_through(exc):
            raise AppExit(exc) from exc


_CONTAINED = _Contained()  # stateless, so one instance serves every thread and task


def contained() -> _Contained:
    """Context manager around app code: a non-`Exception` it raises leaves as `AppExit`."""
    return _CONTAINED

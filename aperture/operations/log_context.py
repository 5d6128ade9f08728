"""What a log line is about: the app, session, request and client, carried in context variables.

Code that handles a request or works for a session binds the fields it knows
(`with bound(app=..., session=...)`); `ContextFilter` copies them onto every log record made
meanwhile, as `record.aperture` (a dict), for the JSON formatter and the admin view's recent
errors. Context variables follow asyncio tasks; code handed to a thread pool must bind again
there (or run in a copied context). Request ids (`request_id_from`) are the client's
`X-Request-Id` when it is short and plain, else fresh ones.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any

FIELDS = ("app", "session", "request_id", "client")

_current: ContextVar[dict[str, Any] | None] = ContextVar("aperture_log_context", default=None)


def current() -> dict[str, Any]:
    """The fields bound now (a copy)."""
    fields = _current.get()
    return dict(fields) if fields else {}


def bind(**fields: Any) -> Token[dict[str, Any] | None]:
    """Add fields (None values are skipped) to the context until `reset(token)`."""
    merged = dict(_current.get() or {})
    merged.update((k, v) for k, v in fields.items() if v is not None)
    return _current.set(merged)


def bind_only(**fields: Any) -> Token[dict[str, Any] | None]:
    """Replace the context with just these fields until `reset(token)`: for work that outlives the
    request it was started from (a session's timers must not carry the page request's id)."""
    return _current.set({k: v for k, v in fields.items() if v is not None})


def reset(token: Token[dict[str, Any] | None]) -> None:
    _current.reset(token)


@contextmanager
def bound(**fields: Any) -> Iterator[None]:
    token = bind(**fields)
    try:
        yield
    finally:
        _current.reset(token)


class ContextFilter(logging.Filter):
    """Attach the bound fields to each record (as `record.aperture`), leaving fields the call
    passed explicitly (`extra={"aperture": {...}}`) in place."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _current.get()
        if fields:
            explicit = getattr(record, "aperture", None)
            record.aperture = {**fields, **explicit} if explicit else dict(fields)
        return True


_PLAIN_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def new_request_id() -> str:
    """A fresh request id: 16 random hex digits."""
    return secrets.token_hex(8)


def request_id_from(header: str | None) -> str:
    """The client's `X-Request-Id` when it is short and plain (so it can go into a log line and a
    response header as is), else a fresh id."""
    if header is not None and _PLAIN_ID.fullmatch(header):
        return header
    return new_request_id()

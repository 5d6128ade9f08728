"""JSON lines for `--log-format json`: every log record becomes one JSON object on one line.

Keys: `time` (ISO 8601, UTC, milliseconds), `level`, `logger`, `message`, `pid`; then, where
known, the context fields from `log_context` (`app`, `session` - the first 12 characters of its
id -, `request_id`, `client`), what the call passed in `extra=` (the access log's `status`,
`duration_ms`, `method`, `path`, ...), and `exception` / `stack` text. The formatter never raises and its output is always valid one-line
JSON: a message whose `%` arguments do not fit is shown with its arguments instead of failing,
control characters are escaped, and very long texts are cut (with a note saying how much).
"""

from __future__ import annotations

import json
import logging
import math
import os
from datetime import UTC, datetime
from typing import Any

SESSION_PREFIX = 12  # characters of a session id logged, as everywhere in Aperture's logs
MAX_TEXT = 32_000  # characters of a message or traceback kept in one line
STANDARD_KEYS = ("time", "level", "logger", "message", "pid")

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "aperture",
    "taskName",
}


def iso_time(created: float) -> str:
    """`created` (seconds since the epoch) as `2026-12-06T07:01:02.345Z`."""
    moment = datetime.fromtimestamp(created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def clip(text: str, limit: int = MAX_TEXT) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} more characters]"


def message_of(record: logging.LogRecord) -> str:
    """The record's message; a message whose arguments do not fit it is shown with them, raw."""
    try:
        return record.getMessage()
    except Exception:
        try:
            return f"{record.msg!r} (arguments that did not fit: {record.args!r})"
        except Exception:
            return "<a log message that could not be shown>"


def _plain(value: Any) -> Any:
    """A value json.dumps takes as is, or its str()."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)  # JSON has no NaN or Infinity
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__name__}>"


def record_fields(record: logging.LogRecord, formatter: logging.Formatter) -> dict[str, Any]:
    """The JSON object for one record (see the module docstring for its keys)."""
    fields: dict[str, Any] = {
        "time": iso_time(record.created),
        "level": record.levelname,
        "logger": record.name,
        "message": clip(message_of(record)),
        "pid": record.process if record.process is not None else os.getpid(),
    }
    context = getattr(record, "aperture", None)
    if isinstance(context, dict):
        for key, value in context.items():
            fields.setdefault(str(key), _plain(value))
        if isinstance(fields.get("session"), str):
            fields["session"] = fields["session"][:SESSION_PREFIX]  # a whole id would let a reader join it
    for key, value in vars(record).items():
        if key not in _RECORD_ATTRIBUTES:
            fields.setdefault(key, _plain(value))
    if record.exc_info:
        fields["exception"] = clip(formatter.formatException(record.exc_info))
    elif record.exc_text:
        fields["exception"] = clip(record.exc_text)
    if record.stack_info:
        fields["stack"] = clip(formatter.formatStack(record.stack_info))
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line, ASCII only (so no stream encoding can fail)."""

    def format(self, record: logging.LogRecord) -> str:
        try:
            fields = record_fields(record, self)
        except Exception as exc:  # a formatter that raises loses the record: say what we can instead
            fields = {
                "time": iso_time(record.created),
                "level": getattr(record, "levelname", "ERROR"),
                "logger": getattr(record, "name", "?"),
                "message": f"<a log record that could not be formatted: {type(exc).__name__}>",
                "pid": os.getpid(),
            }
        return json.dumps(fields, ensure_ascii=True, default=_plain, separators=(",", ":"))

"""Logging set-up for `aperture serve`: level, format, destination and context.

One handler on the root logger (stderr, or `--log-file` appended to) takes the records of every
logger: Aperture's, Bokeh's, Tornado's and the apps'. `--log-level` applies to the `aperture` and
`bokeh` loggers; other loggers log warnings and above, as with `bokeh serve`. The access log
(`aperture.access`) logs at info level whatever `--log-level` says, unless `--access-log no`.

The format is Python logging style (`--log-format`, default `%(asctime)s %(message)s`), where
`%(app)s`, `%(session)s`, `%(request_id)s` and `%(client)s` may be used too ("-" when unknown),
or JSON lines with `--log-format json` (see `json_logs`). In JSON mode Python warnings are logged
too (on `py.warnings`), so nothing but JSON reaches the log.
"""

from __future__ import annotations

import logging
import sys

from aperture.config import Config
from aperture.errors import ConfigError
from aperture.operations.json_logs import SESSION_PREFIX, JsonFormatter
from aperture.operations.log_context import FIELDS, ContextFilter

TRACE = 9
ACCESS_LOGGER = "aperture.access"


class TextFormatter(logging.Formatter):
    """A Python logging format in which the context fields (`%(app)s`, ...) may be named."""

    def format(self, record: logging.LogRecord) -> str:
        context = getattr(record, "aperture", None) or {}
        for name in FIELDS:
            if not hasattr(record, name):
                value = context.get(name, "-")
                setattr(record, name, str(value)[:SESSION_PREFIX] if name == "session" else value)
        return super().format(record)


def text_formatter(fmt: str) -> TextFormatter:
    """The formatter for `--log-format FMT`, checked now so a typo fails at start-up, not per record."""
    try:
        formatter = TextFormatter(fmt)
        probe = logging.LogRecord("aperture", logging.INFO, __file__, 0, "probe", None, None)
        formatter.format(probe)
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"--log-format: {fmt!r} is not a Python logging format ({type(exc).__name__}: {exc}); "
            "e.g. '%(asctime)s %(levelname)s %(name)s %(message)s', or 'json'"
        ) from None
    return formatter


def level_of(config: Config) -> int:
    logging.addLevelName(TRACE, "TRACE")
    return TRACE if config.log_level == "trace" else int(getattr(logging, config.log_level.upper()))


def make_handler(config: Config) -> logging.Handler:
    """The one root handler: where records go, in which format, with the context fields attached."""
    formatter: logging.Formatter = JsonFormatter() if config.log_json else text_formatter(config.log_format)
    handler: logging.Handler
    if config.log_file:
        try:
            handler = logging.FileHandler(config.log_file, mode="a", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--log-file: cannot append to {config.log_file!r}: {exc.strerror}") from None
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(ContextFilter())
    return handler


def configure(config: Config) -> None:
    """Replace the root logger's handlers with Aperture's (raises ConfigError on a bad format or file)."""
    handler = make_handler(config)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    level = level_of(config)
    for name in ("aperture", "bokeh"):
        logging.getLogger(name).setLevel(level)
    # The access log is an operator's record of traffic, kept apart from the diagnostic level.
    logging.getLogger(ACCESS_LOGGER).setLevel(logging.INFO if config.access_log else logging.WARNING)
    logging.captureWarnings(config.log_json)  # JSON lines only: a printed warning would break them

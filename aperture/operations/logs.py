"""Logging set-up for `aperture serve`: the level, the format (Python logging style, or JSON lines
with `--log-format json`), the destination, and the context filter (see `log_context`)."""

from __future__ import annotations

import logging

from aperture.config import Config
from aperture.operations.log_context import ContextFilter

TRACE = 9


def configure(config: Config) -> None:
    logging.addLevelName(TRACE, "TRACE")
    level = TRACE if config.log_level == "trace" else getattr(logging, config.log_level.upper())
    logging.basicConfig(format=config.log_format, filename=config.log_file, level=logging.WARNING, force=True)
    for handler in logging.getLogger().handlers:
        handler.addFilter(ContextFilter())
    for name in ("aperture", "bokeh"):
        logging.getLogger(name).setLevel(level)

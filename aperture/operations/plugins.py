"""Which operations features a server runs, from its configuration: the observers it adds to the
core and the HTTP routes it adds to the application. Each feature is imported only when on."""

from __future__ import annotations

import re
from typing import Any

from aperture.core import ServerCore

Rule = tuple[str, Any, dict[str, Any]]


def attach(core: ServerCore) -> None:
    """Add the configured observers to `core.observer` (before the server starts)."""
    cfg = core.config
    if cfg.access_log:
        from aperture.operations.access_log import AccessLog

        core.observer.add(AccessLog())
    if cfg.metrics:
        from aperture.operations.metrics import MetricsObserver

        core.observer.add(MetricsObserver(core))
    if cfg.admin:
        from aperture.operations.admin import AdminObserver

        core.observer.add(AdminObserver(core))


def routes(core: ServerCore) -> list[Rule]:
    """The HTTP routes of the configured features, under the prefix (they come before the apps')."""
    cfg = core.config
    prefix = re.escape(cfg.prefix)
    rules: list[Rule] = []
    if cfg.metrics:
        from aperture.web.metrics_endpoint import MetricsHandler

        rules.append((prefix + "/metrics", MetricsHandler, {"core": core}))
    if cfg.admin:
        from aperture.web.admin_handlers import admin_rules

        rules.extend(admin_rules(core, prefix))
    return rules

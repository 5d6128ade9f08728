"""Which operations features a server runs, from its configuration: the observers it adds to the
core (their HTTP routes are added by `aperture.web.routes`). Each feature is imported only when on."""

from __future__ import annotations

from aperture.core import ServerCore


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

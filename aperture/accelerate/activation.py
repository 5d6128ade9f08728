"""Turning the accelerators on, only where they were verified.

The accelerators give results identical to Bokeh's own code paths - that is proven by the
differential tests in `tests/accelerate/`, for the Bokeh versions in `VERIFIED`. On any other
Bokeh version they stay off (one log line says so), as they do with `--no-accelerate` or
`APERTURE_ACCELERATE=no`. `activate` is called once per server process, before apps run.
"""

from __future__ import annotations

import logging

import bokeh

log = logging.getLogger("aperture.accelerate")

VERIFIED = frozenset({"3.9.2"})
"""Bokeh versions the differential tests were run against (add one only after running them on it)."""

_active = False


def verified(version: str | None = None) -> bool:
    return (version or bokeh.__version__) in VERIFIED


def active() -> bool:
    """Whether this process serializes and builds documents with the accelerators."""
    return _active


def activate(requested: bool, *, version: str | None = None) -> bool:
    """Turn the accelerators on if `requested` and the Bokeh version was verified; returns whether on."""
    global _active
    version = version or bokeh.__version__
    if not requested:
        log.info("Accelerators off (--no-accelerate / APERTURE_ACCELERATE=no)")
        deactivate()
        return False
    if not verified(version):
        log.warning(
            "Accelerators off: Bokeh %s is not among the versions they were verified against (%s)",
            version,
            ", ".join(sorted(VERIFIED)),
        )
        deactivate()
        return False
    from aperture.accelerate import construction

    construction.install()
    _active = True
    return True


def deactivate() -> None:
    global _active
    if _active:
        from aperture.accelerate import construction

        construction.uninstall()
    _active = False

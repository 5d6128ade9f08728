"""Aperture: a production application server for Bokeh apps.

The public library surface is `aperture.Server` (serve function or file apps from
your own program) and `aperture.embed` (script tags that load a served app into
another page). Everything else is internal and may change.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Server", "__version__"]


def __getattr__(name: str) -> object:
    # Imported lazily so that `import aperture.protocol` stays free of tornado/bokeh.
    if name == "Server":
        from aperture.server import Server

        return Server
    raise AttributeError(name)

"""What the HTTP endpoints return, as pure functions of a session and settings.

The app page and `autoload.js` are rendered with Bokeh's own templates and
BokehJS resources (so app templates and `template_variables` work unchanged);
asset URLs point at this server's `/static/` with a `?v=<sha512>` version so they
can be cached for years. Nothing here knows about HTTP frameworks.
"""

from __future__ import annotations

import hashlib
import html
import json
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from bokeh.core.templates import AUTOLOAD_JS
from bokeh.core.types import ID
from bokeh.embed.bundle import Script, bundle_for_objs_and_resources
from bokeh.embed.elements import html_page_for_render_items, script_for_render_items
from bokeh.embed.util import RenderItem
from bokeh.resources import Resources
from bokeh.util.paths import bokehjs_path, server_path

from aperture.sessions.session import Session

STATIC_DIR = bokehjs_path()
ICON_DIR = server_path() / "views"


@lru_cache(maxsize=256)
def file_version(path: str) -> str:
    """SHA-512 hex digest of a static file: the `?v=` that makes its URL cacheable."""
    return hashlib.sha512((STATIC_DIR / path).read_bytes()).hexdigest()


def versioned(path: str) -> str:
    try:
        return f"{path}?v={file_version(path)}"
    except OSError:
        return path


def favicon_path(setting: str | None) -> Path | None:
    """The icon file for `--ico-path`: the bundled ones, a user file, or None."""
    if setting is None:
        return None
    if setting == "default":
        return ICON_DIR / "bokeh.ico"
    if setting == "default-dev":
        return ICON_DIR / "bokeh-dev.ico"
    return Path(setting)


class PageRenderer:
    """Renders pages for one server's settings."""

    def __init__(
        self,
        *,
        prefix: str,
        mode: str = "server",
        minified: bool = True,
        js_log_level: str = "info",
        dev: bool = False,
    ) -> None:
        self.prefix = prefix
        self.mode = mode
        self.minified = minified
        self.js_log_level = js_log_level
        self.dev = dev

    def resources(self, absolute_url: str | None = None) -> Resources:
        if not self.mode.startswith("server"):
            return Resources(mode=self.mode, minified=self.minified, log_level=self.js_log_level)  # type: ignore[arg-type]
        root = (absolute_url or "") + self.prefix + "/"
        return Resources(
            mode=self.mode,  # type: ignore[arg-type]
            root_url=root,
            minified=self.minified,
            log_level=self.js_log_level,  # type: ignore[arg-type]
            path_versioner=None if self.dev else versioned,
        )

    def app_page(self, session: Session, token: str) -> str:
        doc = session.document
        item = RenderItem(token=token, roots=list(doc.roots), use_for_title=True)
        bundle = bundle_for_objs_and_resources(None, self.resources())
        variables: dict[str, Any] = dict(doc.template_variables)
        page: str = html_page_for_render_items(
            bundle, {}, [item], doc.title, template=doc.template, template_variables=variables
        )
        return page

    def autoload_js(
        self,
        token: str,
        element_id: str,
        *,
        app_path: str,
        absolute_url: str | None,
        load_bokehjs: bool,
    ) -> str:
        resources = self.resources(_origin_of(absolute_url)) if load_bokehjs else None
        bundle = bundle_for_objs_and_resources(None, resources)
        item = RenderItem(token=token, elementid=ID(element_id), use_for_title=False)
        bundle.add(Script(script_for_render_items({}, [item], app_path=app_path, absolute_url=absolute_url)))
        script: str = AUTOLOAD_JS.render(bundle=bundle, elementid=element_id)
        return script


def _origin_of(url: str | None) -> str | None:
    if not url:
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def metadata_json(route: str, data: Any) -> str:
    return json.dumps({"url": route, "data": data})


def index_page(prefix: str, routes: Iterable[str]) -> str:
    """The built-in list of served apps (no external assets)."""
    links = "\n".join(
        f'    <li><a href="{html.escape(prefix + r)}">{html.escape(r.lstrip("/") or "/")}</a></li>'
        for r in sorted(routes)
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n  <meta charset="utf-8">\n'
        "  <title>Running Bokeh Applications</title>\n"
        "  <style>body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:40rem}"
        "li{margin:.4rem 0}</style>\n</head>\n<body>\n  <h1>Running Bokeh Applications</h1>\n"
        f"  <ul>\n{links}\n  </ul>\n</body>\n</html>\n"
    )


def error_page(status: int, title: str, summary: str, detail: str | None = None) -> str:
    """A plain error page; `detail` (a traceback) only in development mode."""
    body = f"<h1>{status}: {html.escape(title)}</h1>\n<pre>{html.escape(summary)}</pre>\n"
    if detail:
        body += f"<h2>Traceback</h2>\n<pre>{html.escape(detail)}</pre>\n"
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8"><title>{status}: '
        f"{html.escape(title)}</title></head>\n<body>\n{body}</body>\n</html>\n"
    )

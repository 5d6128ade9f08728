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
import re
import secrets
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from bokeh.core.has_props import HasProps
from bokeh.core.templates import AUTOLOAD_JS, FILE
from bokeh.core.types import ID
from bokeh.embed.bundle import Bundle, Script, bundle_for_objs_and_resources
from bokeh.embed.elements import html_page_for_render_items, script_for_render_items
from bokeh.embed.util import RenderItem
from bokeh.resources import Resources
from bokeh.settings import is_dev
from bokeh.util.paths import bokehjs_path, server_path
from bokeh.util.serialization import make_globally_unique_css_safe_id, make_globally_unique_id

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
        self._page_assets: tuple[tuple[object, ...], tuple[str, str]] | None = None
        self._skeletons: dict[tuple[object, ...], _Skeleton | None] = {}
        self._autoload_bundles: dict[tuple[object, ...], Bundle] = {}

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

    def page_assets(self) -> tuple[str, str]:
        """The app page's `(bokeh_js, bokeh_css)`: the `<script>` and `<link>` tags of the bundle.

        Bokeh recomputes them for every page (a scan of every model class's `__javascript__`,
        `__css__`, `__implementation__` and extension package: about 1.8 ms, half a `hello` page
        view). In "server" mode they depend only on this renderer's fixed settings, `BOKEH_DEV`,
        the registered model classes and the files of installed extensions, so they are kept
        while `_assets_key()` stays the same: a newly defined or redefined model class (an app
        script defining one runs again) computes them again. Assumed unchanging while serving,
        like the `?v=` hashes of `file_version`: those class attributes once a class is
        registered, and extension packages on disk. Other modes read more settings and files
        per page: they are never kept.
        """
        if self.mode != "server":
            js, css = bundle_for_objs_and_resources(None, self.resources())
            return js, css
        key = _assets_key()
        cached = self._page_assets
        if cached is not None and cached[0] == key:
            return cached[1]
        js, css = bundle_for_objs_and_resources(None, self.resources())
        assets = (js, css)
        self._page_assets = (key, assets)
        return assets

    def app_page(self, session: Session, token: str) -> str:
        doc = session.document
        bundle = self.page_assets()
        if doc.template is FILE and not doc.template_variables:
            roots = list(doc.roots)
            page = self._from_skeleton(bundle, doc.title, token, [root.id for root in roots])
            if page is not None:
                return page
        item = RenderItem(token=token, roots=list(doc.roots), use_for_title=True)
        variables: dict[str, Any] = dict(doc.template_variables)
        page = html_page_for_render_items(
            bundle, {}, [item], doc.title, template=doc.template, template_variables=variables
        )
        return page

    def _autoload_bundle(self, origin: str | None, load_bokehjs: bool) -> Bundle:
        """A fresh `Bundle` for `autoload.js`, copied from one kept as `page_assets` keeps theirs
        (per origin the assets load from, at most `_MAX_SKELETONS` of them)."""
        if self.mode != "server":
            return bundle_for_objs_and_resources(None, self.resources(origin) if load_bokehjs else None)
        key = (origin, load_bokehjs, _assets_key())
        kept = self._autoload_bundles.get(key)
        if kept is None:
            if len(self._autoload_bundles) >= _MAX_SKELETONS:
                self._autoload_bundles.clear()
            resources = self.resources(origin) if load_bokehjs else None
            kept = self._autoload_bundles[key] = bundle_for_objs_and_resources(None, resources)
        return Bundle(kept.js_files, kept.js_raw, kept.css_files, kept.css_raw, kept.hashes)  # copies

    def _from_skeleton(
        self, bundle: tuple[str, str], title: str | None, token: str, root_ids: Sequence[str]
    ) -> str | None:
        """The page Bokeh's default template renders, from a skeleton kept per title and number
        of roots: rendering it through Jinja every time (five templates) cost about 200 us a page.

        The skeleton is Bokeh's own rendering with placeholders for what changes per page (the
        token, the root ids, and the random ids of the root elements and of the JSON script);
        placeholders and values are all plain `[A-Za-z0-9_.-]` text, which no escaping along
        the way changes, and a value that is not (a root id an app chose) renders the page the
        slow way. None: render it the slow way.
        """
        values = [token, *root_ids]
        if not all(map(_PLAIN.fullmatch, values)):
            return None
        key = (bundle, title, len(root_ids), is_dev())
        skeleton = self._skeletons.get(key, _MISSING)
        if skeleton is _MISSING:
            if len(self._skeletons) >= _MAX_SKELETONS:
                self._skeletons.clear()
            skeleton = self._skeletons[key] = _Skeleton.render(bundle, title, len(root_ids))
        if skeleton is None:
            return None
        assert isinstance(skeleton, _Skeleton)
        return skeleton.fill(token, root_ids)

    def autoload_js(
        self,
        token: str,
        element_id: str,
        *,
        app_path: str,
        absolute_url: str | None,
        load_bokehjs: bool,
    ) -> str:
        bundle = self._autoload_bundle(_origin_of(absolute_url), load_bokehjs)
        item = RenderItem(token=token, elementid=ID(element_id), use_for_title=False)
        bundle.add(Script(script_for_render_items({}, [item], app_path=app_path, absolute_url=absolute_url)))
        script: str = AUTOLOAD_JS.render(bundle=bundle, elementid=element_id)
        return script


_PLAIN = re.compile(r"[A-Za-z0-9_.\-]+")
_MAX_SKELETONS = 64
_MISSING: Any = object()


class _Root:
    """Stands in for a root model while a skeleton is rendered (Bokeh reads `id`, `name`, `tags`)."""

    def __init__(self, model_id: str) -> None:
        self.id = model_id
        self.name = None
        self.tags: list[Any] = []


class _Skeleton:
    """A default-template app page cut at its per-page values: literal text and slots."""

    def __init__(self, parts: list[str], slots: list[tuple[str, int]], roots: int) -> None:
        self.parts = parts  # len(slots) + 1 pieces of literal text, around the slots
        self.slots = slots  # ("token" | "json" | "root" | "element", root index)
        self.roots = roots

    @classmethod
    def render(cls, bundle: tuple[str, str], title: str | None, roots: int) -> _Skeleton | None:
        mark = f"apskel{secrets.token_hex(8)}"
        names = {f"{mark}t": ("token", 0)}
        names.update({f"{mark}r{i:05d}x": ("root", i) for i in range(roots)})
        names.update({f"{mark}e{i:05d}x": ("element", i) for i in range(roots)})
        placeholders = {slot: name for name, slot in names.items()}
        stand_ins = {_Root(placeholders["root", i]): placeholders["element", i] for i in range(roots)}
        item = RenderItem(token=placeholders["token", 0], roots=stand_ins, use_for_title=True)  # type: ignore[arg-type]
        page: str = html_page_for_render_items(bundle, {}, [item], title, template=FILE)
        json_id = re.search(r'<script type="application/json" id="([^"]+)">', page)
        if json_id is None or mark in json_id.group(1):
            return None
        names[f"{mark}j"] = ("json", 0)
        page = page.replace(json_id.group(1), f"{mark}j")
        pieces = re.split(f"({mark}[a-z0-9]*)", page)
        parts, slots = pieces[0::2], [names.get(name) for name in pieces[1::2]]
        if None in slots or any(mark in part for part in parts):
            return None
        return cls(parts, slots, roots)  # type: ignore[arg-type]

    def fill(self, token: str, root_ids: Sequence[str]) -> str:
        # Bokeh's order of drawing: the root elements' ids (RenderItem), then the JSON script's.
        elements = [make_globally_unique_id() for _ in range(self.roots)]
        values = {"token": [token], "root": root_ids, "element": elements}
        values["json"] = [make_globally_unique_css_safe_id()]
        out = [self.parts[0]]
        for (kind, index), part in zip(self.slots, self.parts[1:], strict=True):
            out.append(values[kind][index])
            out.append(part)
        return "".join(out)


def _assets_key() -> tuple[object, ...]:
    """What the server-mode page assets depend on besides the renderer's own settings.

    The registered classes themselves (not only their names) are part of the key, and the
    cache holds them, so a replaced class can never be mistaken for one that reused its id.
    (`sys.modules` is no signal: every live session's app module is in it.)
    """
    registry = HasProps.model_class_reverse_map
    return (is_dev(), tuple(registry), tuple(registry.values()))


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

"""The URL layout: which handler answers which path, under the configured prefix.

Order matters (first match wins): favicon (never prefixed), then per app the page,
`/ws`, `/metadata`, `/autoload.js` and `/static/`, then the index, the extensions'
`/static/extensions/` and the BokehJS `/static/`. App routes are escaped, so `c++.py` is
served at `/c++`. An app's `/static/` that mirrors BokehJS mirrors the extensions too: Panel
links some assets relative to the page, which resolve there when the page URL ends in `/`.
"""

from __future__ import annotations

import re
from typing import Any

from tornado import web

from aperture.core import ServerCore
from aperture.pages import PageRenderer
from aperture.web.auth import AuthPolicy
from aperture.web.handlers import (
    AppPageHandler,
    AutoloadHandler,
    FaviconHandler,
    HealthHandler,
    IndexHandler,
    MetadataHandler,
    ReadyHandler,
)
from aperture.web.static import (
    AppStaticHandler,
    BokehJSHandler,
    ExtensionAssets,
    ExtensionHandler,
    WholeResponseGZip,
    app_static_cache,
)
from aperture.web.websocket import BokehWebSocket, KeepAlive

Rule = tuple[str, type[web.RequestHandler], dict[str, Any]]


def _operations_rules(core: ServerCore) -> list[Rule]:
    """The routes of the operations features that are on (see aperture/operations/plugins.py)."""
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


def build_rules(
    core: ServerCore, renderer: PageRenderer, keepalive: KeepAlive, icon: bytes | None, auth: AuthPolicy
) -> list[Rule]:
    cfg = core.config
    prefix = re.escape(cfg.prefix)
    common = {"core": core, "renderer": renderer}
    extensions = {"extensions": ExtensionAssets(revalidate=cfg.dev is not None)}
    rules: list[Rule] = [
        (prefix + "/healthz", HealthHandler, common),
        (prefix + "/readyz", ReadyHandler, common),
        *_operations_rules(core),
    ]
    if icon is not None:
        rules.append((r"/favicon\.ico", FaviconHandler, {**common, "icon": icon}))
    for route, registry in core.apps.items():
        base = prefix + ("" if route == "/" else re.escape(route))
        per_app = {**common, "route": route}
        rules += [
            (base + "/?", AppPageHandler, per_app),
            (base + "/ws", BokehWebSocket, {"core": core, "route": route, "keepalive": keepalive}),
            (base + "/metadata", MetadataHandler, per_app),
            (base + "/autoload\\.js", AutoloadHandler, per_app),
        ]
        static = registry.runner.static_path
        if static:
            rules.append((base + "/static/(.*)", AppStaticHandler, {"cache": app_static_cache(static)}))
        else:
            rules.append((base + "/static/extensions/(.*)", ExtensionHandler, extensions))
            rules.append((base + "/static/(.*)", BokehJSHandler, {}))
    rules += [(re.escape(cfg.prefix) + path, handler, kwargs) for path, handler, kwargs in auth.endpoints("")]
    if cfg.use_index:
        rules.append((prefix + "/?", IndexHandler, {**common, "index": cfg.index}))
    rules.append((prefix + "/static/extensions/(.*)", ExtensionHandler, extensions))
    rules.append((prefix + "/static/(.*)", BokehJSHandler, {}))
    return rules


def build_application(
    core: ServerCore,
    renderer: PageRenderer,
    keepalive: KeepAlive,
    *,
    icon: bytes | None,
    origins: tuple[str, ...],
    auth: AuthPolicy,
    **settings: Any,
) -> web.Application:
    cfg = core.config
    return web.Application(
        build_rules(core, renderer, keepalive, icon, auth),
        transforms=[WholeResponseGZip],  # gzip whole responses only; static files bring their own
        websocket_max_message_size=cfg.websocket_max_message_size,
        cookie_secret=cfg.cookie_secret,
        xsrf_cookies=cfg.xsrf_cookies,
        aperture_auth=auth,
        aperture_prefix=cfg.prefix,
        serve_traceback=cfg.dev is not None,
        aperture_origins=origins,
        aperture_redirect_root=cfg.redirect_root,
        aperture_compression_level=cfg.websocket_compression_level,
        aperture_compression_mem_level=cfg.websocket_compression_mem_level,
        log_function=core.observer.request_finished,  # instead of Tornado's access log
        **settings,
    )

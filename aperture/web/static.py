"""Static files: BokehJS assets from memory (gzip-compressed once), app `static/` dirs.

BokehJS files never change while the server runs, so each is read once and kept,
with a gzip copy for clients that accept it (`bokeh.min.js`: 1.2 MB -> ~300 KB).
URLs carrying `?v=` are immutable and cached for ten years; every response has a
strong ETag, so revalidation is a cheap 304. Directory apps' own `static/`
folders are served by Tornado's file handler, behind the auth module.
"""

from __future__ import annotations

import email.utils
import gzip
import hashlib
import mimetypes
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from tornado import web

from aperture.pages import STATIC_DIR
from aperture.web.requests import AuthMixin

TEN_YEARS = 10 * 365 * 24 * 3600
COMPRESSIBLE = (".js", ".css", ".json", ".map", ".ts", ".html", ".svg", ".txt")


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes | None
    etag: str
    content_type: str
    last_modified: str


class AssetCache:
    """Files of one directory, loaded on first use and kept."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._assets: dict[str, Asset | None] = {}
        self._lock = threading.Lock()

    def get(self, path: str) -> Asset | None:
        if path in self._assets:
            return self._assets[path]
        asset = self._load(path)
        with self._lock:
            if len(self._assets) < 4096:
                self._assets[path] = asset
        return asset

    def _load(self, path: str) -> Asset | None:
        full = (self.root / path).resolve()
        if not full.is_relative_to(self.root) or not full.is_file():
            return None
        body = full.read_bytes()
        gzipped = gzip.compress(body, 6, mtime=0) if full.suffix in COMPRESSIBLE and len(body) > 512 else None
        content_type = mimetypes.guess_type(full.name)[0] or "application/octet-stream"
        if content_type == "application/javascript":
            content_type = "text/javascript"
        if content_type.startswith("text/"):
            content_type += "; charset=UTF-8"
        return Asset(
            body=body,
            gzipped=gzipped,
            etag='"' + hashlib.sha512(body).hexdigest() + '"',
            content_type=content_type,
            last_modified=email.utils.formatdate(os.stat(full).st_mtime, usegmt=True),
        )


BOKEHJS = AssetCache(STATIC_DIR)


class BokehJSHandler(web.RequestHandler):
    """`P/static/<path>`: BokehJS, from memory, compressed when the client accepts gzip."""

    def set_default_headers(self) -> None:
        self.set_header("Server", "Aperture")

    def head(self, path: str) -> None:
        self.get(path, include_body=False)

    def get(self, path: str, include_body: bool = True) -> None:
        asset = BOKEHJS.get(path)
        if asset is None:
            raise web.HTTPError(404)
        self.set_header("Etag", asset.etag)
        self.set_header("Last-Modified", asset.last_modified)
        self.set_header("Content-Type", asset.content_type)
        if self.get_query_argument("v", None) is not None:
            self.set_header("Cache-Control", f"public, max-age={TEN_YEARS}, immutable")
        if asset.gzipped is not None:
            self.set_header("Vary", "Accept-Encoding")
        if asset.etag in self.request.headers.get("If-None-Match", ""):
            self.set_status(304)
            self.finish()
            return
        body = asset.body
        if asset.gzipped is not None and "gzip" in self.request.headers.get("Accept-Encoding", ""):
            self.set_header("Content-Encoding", "gzip")
            body = asset.gzipped
        self.set_header("Content-Length", len(body))
        self.finish(body if include_body else None)

    def compute_etag(self) -> str | None:
        return None  # set explicitly above; never hash a megabyte per request


class AppStaticHandler(AuthMixin, web.StaticFileHandler):
    """A directory app's own `static/` files: protected by the auth module like its page."""

    def set_default_headers(self) -> None:
        self.set_header("Server", "Aperture")

    async def prepare(self) -> None:
        await super().prepare()
        if not self.authenticated():
            if self.request.method in ("GET", "HEAD"):
                self.redirect(self.auth.redirect_target(self, self.settings["aperture_prefix"]))
            else:
                raise web.HTTPError(403, reason="Authentication required")

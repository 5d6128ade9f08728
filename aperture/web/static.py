"""Static files: BokehJS, extensions' assets and apps' `static/` folders, from bounded memory caches.

Each file is found by its real path (`AssetCache.locate`: every spelling of a path names one
entry, a miss is remembered nowhere, a NUL byte or an undecodable path is a plain 404), then
served from memory with a gzip copy made once in a worker thread (`bokeh.min.js`: 1.2 MB ->
~300 KB). What the cache will not hold (a file over its size limit, or beyond its budget) and
range requests are streamed from disk by Tornado's `StaticFileHandler`, which checks the same
root and symlinks again; `WholeResponseGZip` keeps Tornado from compressing those streams on the
event loop per request. URLs carrying `?v=` are immutable and cached for ten years; every
response has a strong ETag (the file's SHA-512, as the reference), so revalidation is a cheap 304.
Directory apps' own `static/` folders sit behind the auth module and are re-read when they change.
Extensions' assets (`P/static/extensions/<name>/<path>`, Panel's among them) get one cache per
extension, made the first time a request names an extension `aperture.extensions` can find; a
name that finds none is a 404 that leaves nothing behind, so the number of caches is bounded by
the extensions installed.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from tornado import httputil, web

from aperture.extensions import installed_dir, registered_dir
from aperture.pages import STATIC_DIR
from aperture.web.assets import Asset, AssetCache
from aperture.web.requests import AuthMixin, RequestContext

TEN_YEARS = 10 * 365 * 24 * 3600
APP_STATIC_FILE_BYTES = 4 * 1024 * 1024  # bigger files of an app's static/ are streamed from disk
APP_STATIC_TOTAL_BYTES = 64 * 1024 * 1024  # per app, gzip copies included
# Per extension: Panel ships ~100 MB of optional bundles, so hold what pages use, within a budget.
EXTENSION_FILE_BYTES = 8 * 1024 * 1024
EXTENSION_TOTAL_BYTES = 32 * 1024 * 1024
UNDECODABLE = "\x00"  # no file has a NUL in its name, so `locate` answers 404

# BokehJS never changes while the server runs: held whole (~24 MB at most, plus gzip copies).
BOKEHJS = AssetCache(STATIC_DIR)


def app_static_cache(path: str) -> AssetCache:
    """The cache for one directory app's `static/` folder: bounded, and re-read when a file changes."""
    return AssetCache(
        path,
        max_file_bytes=APP_STATIC_FILE_BYTES,
        max_total_bytes=APP_STATIC_TOTAL_BYTES,
        revalidate=True,
    )


class ExtensionAssets:
    """One `AssetCache` per BokehJS extension, made when a request first names the extension."""

    def __init__(self, *, revalidate: bool = False) -> None:
        self.revalidate = revalidate  # --dev: an extension being rebuilt is served fresh
        self._caches: dict[str, tuple[Path, AssetCache]] = {}

    def cache(self, name: str) -> AssetCache | None:
        """The cache of extension `name`'s artifacts directory, or None for no extension."""
        registered = registered_dir(name)
        held = self._caches.get(name)
        if held is not None and (registered is None or registered == held[0]):
            return held[1]
        directory = registered or installed_dir(name)
        if directory is None or not os.path.isdir(directory):
            return None
        cache = AssetCache(
            directory,
            max_file_bytes=EXTENSION_FILE_BYTES,
            max_total_bytes=EXTENSION_TOTAL_BYTES,
            revalidate=self.revalidate,
        )
        self._caches[name] = (directory, cache)
        return cache


class AssetHandler(RequestContext, web.StaticFileHandler):
    """`<path>` under one `AssetCache`: from memory when held, else streamed from disk."""

    cache: AssetCache

    def initialize(self, cache: AssetCache) -> None:  # type: ignore[override]
        super().initialize(path=cache.root)
        self.cache = cache

    def set_default_headers(self) -> None:
        self.set_header("Server", "Aperture")

    def decode_argument(self, value: bytes, name: str | None = None) -> str:
        if name is None:  # the path captured by the route: undecodable bytes name no file
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                return UNDECODABLE
        return super().decode_argument(value, name)

    async def get(self, path: str, include_body: bool = True) -> None:
        key = self.cache.locate(path)
        if key is None:
            raise web.HTTPError(404)
        asset = None if "Range" in self.request.headers else await self.cache.get(key)
        if asset is None:
            await self._stream(key, include_body)
        else:
            self._send(asset, include_body)

    async def _stream(self, key: str, include_body: bool) -> None:
        # Tornado's ETag is the SHA-512 of the whole file, computed once per file: do it off the loop.
        settings = {"static_path": self.cache.root}
        await asyncio.get_running_loop().run_in_executor(None, self.get_version, settings, key)
        await super().get(key, include_body)

    def _send(self, asset: Asset, include_body: bool) -> None:
        self.set_header("Etag", asset.etag)
        self.set_header("Last-Modified", asset.last_modified)
        self.set_header("Content-Type", asset.content_type)
        self.set_header("Accept-Ranges", "bytes")
        if "v" in self.request.query_arguments:
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


class BokehJSHandler(AssetHandler):
    """`P/static/<path>` (and a script app's `P A/static/<path>`): BokehJS."""

    def initialize(self, cache: AssetCache = BOKEHJS) -> None:  # type: ignore[override]
        super().initialize(cache)


class ExtensionHandler(AssetHandler):
    """`P/static/extensions/<name>/<path>` (and a script app's `P A/static/extensions/...`)."""

    def initialize(self, extensions: ExtensionAssets) -> None:  # type: ignore[override]
        super().initialize(BOKEHJS)  # replaced per request by the named extension's cache
        self.extensions = extensions

    async def get(self, path: str, include_body: bool = True) -> None:
        name, _, rest = path.partition("/")
        cache = self.extensions.cache(name)
        if cache is None:
            raise web.HTTPError(404)
        self.cache = cache
        self.root = cache.root
        await super().get(rest, include_body)


class AppStaticHandler(AuthMixin, AssetHandler):
    """A directory app's own `static/` files: protected by the auth module like its page."""

    async def prepare(self) -> None:
        await super().prepare()
        if not self.authenticated():
            if self.request.method in ("GET", "HEAD"):
                self.redirect(self.auth.redirect_target(self, self.settings["aperture_prefix"]))
            else:
                raise web.HTTPError(403, reason="Authentication required")


class WholeResponseGZip(web.GZipContentEncoding):
    """Tornado's on-the-fly gzip, for responses written in one piece only (pages, metadata, errors).

    A response written in pieces is a file streamed from disk: compressing it would cost the event
    loop time on every request, so it goes out as it is. Held static files bring their own gzip copy.
    """

    def __init__(self, request: httputil.HTTPServerRequest) -> None:
        super().__init__(request)
        self._streaming = False

    def transform_first_chunk(
        self, status_code: int, headers: httputil.HTTPHeaders, chunk: bytes, finishing: bool
    ) -> tuple[int, httputil.HTTPHeaders, bytes]:
        vary = headers.get("Vary", "")
        if finishing:
            status_code, headers, chunk = super().transform_first_chunk(
                status_code, headers, chunk, finishing
            )
        else:
            self._streaming = True
        if "accept-encoding" not in vary.lower():
            vary = f"{vary}, Accept-Encoding" if vary else "Accept-Encoding"
        headers["Vary"] = vary  # once, even when the handler already said it
        return status_code, headers, chunk

    def transform_chunk(self, chunk: bytes, finishing: bool) -> bytes:
        return chunk if self._streaming else super().transform_chunk(chunk, finishing)

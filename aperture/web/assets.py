"""A bounded in-memory cache of the static files under one directory, each with a gzip copy.

An entry exists only for a regular file that really is under the root, keyed by its path relative
to the *resolved* root once every symlink, `.`, `..` and doubled slash has been resolved, so all
the spellings of one file share one entry and a miss leaves nothing behind; a path that cannot
name a file under the root (a NUL byte, absolute, longer than `MAX_PATH`) is a miss without a
filesystem call. Reading, hashing and compressing happen once per file in a worker thread, never
on the event loop, and concurrent first requests for a file wait for the same load. Memory is the
size of the files held plus their gzip copies, within `max_total_bytes`; a file above
`max_file_bytes`, or one that no longer fits, is not held (`get` returns None) and the caller
streams it from disk. With `revalidate`, a held file whose size, mtime or inode changed is read
again, for directories that may change while the server runs. Framework-neutral: used by
`web/static.py` for BokehJS and apps' `static/` folders, and meant for extension assets too.
"""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import hashlib
import mimetypes
import os
import stat
from dataclasses import dataclass
from pathlib import Path

MAX_PATH = 1024  # characters; no real asset path is longer, and realpath() costs one lstat per component
COMPRESSIBLE_SUFFIXES = frozenset(".js .mjs .css .json .map .ts .html .svg .txt .xml .csv".split())
# Tornado's own on-the-fly gzip list: anything it would compress we compress once ahead of it.
COMPRESSIBLE_TYPES = {
    "application/javascript",
    "application/x-javascript",
    "application/xml",
    "application/atom+xml",
    "application/json",
    "application/xhtml+xml",
    "image/svg+xml",
}
MIN_GZIP_SIZE = 512  # smaller files gain nothing once the gzip header is paid for

Stamp = tuple[int, int, int]  # (st_mtime_ns, st_size, st_ino): changes whenever the file does


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes | None
    etag: str
    content_type: str
    last_modified: str
    stamp: Stamp

    @property
    def nbytes(self) -> int:
        return len(self.body) + len(self.gzipped or b"")


class AssetCache:
    """The files under `root`, loaded on first use in a thread and kept within a memory budget."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        max_file_bytes: int | None = None,
        max_total_bytes: int | None = None,
        revalidate: bool = False,
    ) -> None:
        self.root = os.path.realpath(root)
        self._prefix = os.path.join(self.root, "")
        self.max_file_bytes = max_file_bytes
        self.max_total_bytes = max_total_bytes
        self.revalidate = revalidate
        self._assets: dict[str, Asset] = {}
        self._loading: dict[str, asyncio.Future[Asset | None]] = {}
        self._held_bytes = 0

    def locate(self, path: str) -> str | None:
        """The key of the regular file `path` names under the root, or None."""
        if path in self._assets and not self.revalidate:
            return path  # a key is already canonical; skip the per-component lstat on the hot path
        if "\x00" in path or len(path) > MAX_PATH or path.startswith("/"):
            return None  # an absolute path would only confirm where the root lives
        full = os.path.realpath(os.path.join(self.root, path))
        if not full.startswith(self._prefix):
            return None
        try:
            if not stat.S_ISREG(os.stat(full).st_mode):
                return None
        except (OSError, ValueError):
            return None
        return full[len(self._prefix) :]

    async def get(self, key: str) -> Asset | None:
        """The asset for a key from `locate`, loading it if need be; None if it is not to be held."""
        held = self._assets.get(key)
        if held is not None and (not self.revalidate or held.stamp == self._stamp(key)):
            return held
        if held is None and not self._may_hold(key):
            return None
        loading = self._loading.get(key)
        if loading is None:
            loading = asyncio.get_running_loop().run_in_executor(None, self._read, key)
            self._loading[key] = loading
            loading.add_done_callback(lambda done: self._store(key, done))
        return await asyncio.shield(loading)

    def _may_hold(self, key: str) -> bool:
        stamp = self._stamp(key)
        if stamp is None:
            return False
        size = stamp[1]
        if self.max_file_bytes is not None and size > self.max_file_bytes:
            return False
        return self.max_total_bytes is None or self._held_bytes + size <= self.max_total_bytes

    def _stamp(self, key: str) -> Stamp | None:
        try:
            st = os.stat(os.path.join(self.root, key))
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _store(self, key: str, done: asyncio.Future[Asset | None]) -> None:
        self._loading.pop(key, None)
        old = self._assets.pop(key, None)
        if old is not None:
            self._held_bytes -= old.nbytes
        if done.cancelled() or done.exception() is not None:
            return
        asset = done.result()
        if asset is None:
            return
        if self.max_total_bytes is None or self._held_bytes + asset.nbytes <= self.max_total_bytes:
            self._assets[key] = asset
            self._held_bytes += asset.nbytes

    def _read(self, key: str) -> Asset | None:
        """Runs in a worker thread: read, hash and compress one file."""
        limit = self.max_file_bytes
        try:
            with open(os.path.join(self.root, key), "rb") as f:
                st = os.fstat(f.fileno())
                if not stat.S_ISREG(st.st_mode):
                    return None
                body = f.read() if limit is None else f.read(limit + 1)
        except OSError:
            return None
        if limit is not None and len(body) > limit:
            return None  # it grew since it was looked at
        content_type = _content_type(key)
        gzipped = None
        if len(body) >= MIN_GZIP_SIZE and _compressible(key, content_type):
            # Kept even when it saves nothing: without it Tornado would compress the file per request.
            gzipped = gzip.compress(body, 6, mtime=0)
        return Asset(
            body=body,
            gzipped=gzipped,
            etag='"' + hashlib.sha512(body).hexdigest() + '"',
            content_type=content_type,
            last_modified=email.utils.formatdate(st.st_mtime, usegmt=True),
            stamp=(st.st_mtime_ns, st.st_size, st.st_ino),
        )


def _content_type(key: str) -> str:
    content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
    if content_type == "application/javascript":
        content_type = "text/javascript"
    if content_type.startswith("text/"):
        content_type += "; charset=UTF-8"
    return content_type


def _compressible(key: str, content_type: str) -> bool:
    bare = content_type.split(";")[0]
    return Path(key).suffix in COMPRESSIBLE_SUFFIXES or bare.startswith("text/") or bare in COMPRESSIBLE_TYPES

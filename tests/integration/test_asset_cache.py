"""Static files under attack: path variants, missing-path floods, NUL bytes, traversal, symlinks.

Every test talks to a real server over raw HTTP (``http.client`` sends the path exactly as
written, so ``//``, ``/./`` and ``%2e`` reach the server untouched) and, where memory is the
point, reads the server's resident set size from ``/proc/<pid>/status``. The rules checked:
a static file is held at most once however its path is spelled, a miss is never remembered,
odd paths answer 404 (never 500), nothing outside the served directory is reachable, and a
file too big to hold is streamed as it is rather than compressed per request.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from aperture.pages import STATIC_DIR
from tests.support.rawhttp import Client, Reply
from tests.support.servers import ServerProcess

APPS = "tests/apps"
MB = 1024 * 1024
BOKEH_MIN = (STATIC_DIR / "js" / "bokeh.min.js").read_bytes()
GZIP = {"Accept-Encoding": "gzip"}
SECRET = b"top secret, outside every static directory"
APP_MAIN = 'from bokeh.io import curdoc\nfrom bokeh.models import Div\ncurdoc().add_root(Div(text="x"))\n'
STYLE = ("body { color: #123456; }\n" * 200).encode()  # 5 KB, worth compressing
BIG = b"".join(b"line %08d of a big compressible text file\n" % i for i in range(200_000))  # ~8.6 MB


def rss(server: ServerProcess) -> int:
    """Resident set size of the server process, in bytes."""
    status = Path(f"/proc/{server.pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert match, status
    return int(match.group(1)) * 1024


@pytest.fixture(scope="module", autouse=True)
def linux_only() -> None:
    if not sys.platform.startswith("linux") and os.environ.get("CI") != "true":
        pytest.skip("reads /proc/<pid>/status")


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    secret = tmp_path_factory.mktemp("outside") / "secret.txt"
    secret.write_bytes(SECRET)
    return secret


@pytest.fixture(scope="module")
def dir_app(tmp_path_factory: pytest.TempPathFactory, outside: Path) -> Path:
    """A directory app whose `static/` holds a small and a big file and symlinks in and out."""
    app = tmp_path_factory.mktemp("apps") / "shelf"
    static = app / "static"
    static.mkdir(parents=True)
    (app / "main.py").write_text(APP_MAIN)
    (static / "style.css").write_bytes(STYLE)
    (static / "big.txt").write_bytes(BIG)
    (static / "self").symlink_to(".")  # inside the root: allowed, but still one file
    (static / "escape.txt").symlink_to(outside)  # a file outside the root
    (static / "up").symlink_to("..")  # a directory outside the root
    return app


@pytest.fixture(scope="module")
def server(module_server_factory, dir_app: Path) -> ServerProcess:
    return module_server_factory([f"{APPS}/demo.py", str(dir_app)])


@pytest.fixture
def client(server: ServerProcess) -> Iterator[Client]:
    c = Client(server.port or 0)
    yield c
    c.close()


SPELLINGS = {
    "slashes": lambda k: "/static/js" + "/" * (k + 1) + "bokeh.min.js",
    "dots": lambda k: "/static/js/" + "./" * k + "bokeh.min.js",
    "encoded-dots": lambda k: "/static/js/" + "%2e/" * k + "bokeh.min.js",
    "up-and-down": lambda k: "/static/" + "js/../" * k + "js/bokeh.min.js",
    "app-slashes": lambda k: "/demo/static/js" + "/" * (k + 1) + "bokeh.min.js",  # a script app's static/
    "app-encoded-dots": lambda k: "/demo/static/js/" + "%2E/" * k + "bokeh.min.js",
}


def bokehjs_variants(count: int) -> Iterator[tuple[str, str]]:
    """(form, path): ``count`` distinct spellings of /static/js/bokeh.min.js."""
    forms = list(SPELLINGS)
    for i in range(count):
        form = forms[i % len(forms)]
        yield form, SPELLINGS[form](i // len(forms) + 1)


def assert_consistent(replies: dict[str, list[Reply]], expected: bytes, canonical: Reply) -> None:
    """Per spelling: all 404, or all 200 with the very bytes (and encoding) of the canonical path."""
    for form, got in replies.items():
        statuses = {r.status for r in got}
        assert statuses in ({200}, {404}), (form, statuses)
        for r in got:
            if r.status == 200:
                assert r.headers.get("content-encoding") == canonical.headers.get("content-encoding"), form
                assert r.body == canonical.body and r.decoded == expected, form


# -- BokehJS ---------------------------------------------------------------------------------------


def test_spellings_of_one_bokehjs_file_share_one_copy(server: ServerProcess, client: Client) -> None:
    canonical = client.get("/static/js/bokeh.min.js", GZIP)
    assert canonical.status == 200 and canonical.headers["content-encoding"] == "gzip"
    assert canonical.decoded == BOKEH_MIN
    assert client.get("/static/js/bokeh.min.js").body == BOKEH_MIN
    before = rss(server)

    replies: dict[str, list[Reply]] = {}
    for form, path in bokehjs_variants(300):
        replies.setdefault(form, []).append(client.get(path, GZIP))
    grown = rss(server) - before

    assert_consistent(replies, BOKEH_MIN, canonical)
    assert grown < 30 * MB, f"RSS grew by {grown / MB:.0f} MB over 300 spellings of one file"
    assert client.get("/healthz").status == 200


def test_a_flood_of_missing_paths_is_not_remembered(server: ServerProcess, client: Client) -> None:
    assert client.get("/static/js/missing-warmup.js").status == 404
    before = rss(server)
    pad = "x" * 180
    for i in range(4000):
        path = "/static/js/" + "/".join(f"{pad}{i}-{j}" for j in range(18)) + ".js"  # ~3.4 KB each
        assert client.get(path).status == 404, path[:80]
    grown = rss(server) - before
    assert grown < 6 * MB, f"RSS grew by {grown / MB:.1f} MB over 4000 missing paths"
    assert client.get("/static/js/bokeh.min.js").status == 200


def test_nul_and_undecodable_paths_are_404(server: ServerProcess, client: Client) -> None:
    for path in [
        "/static/%00",
        "/static/js/bokeh.min.js%00",
        "/static/js/%00/../bokeh.min.js",
        "/static/%ff",
        "/static/js/%c3%28.js",
        "/demo/static/%00",
        "/shelf/static/%00",
        "/shelf/static/style.css%00",
        "/shelf/static/%ff",
    ]:
        assert client.get(path).status == 404, path
        assert client.get(path, method="HEAD").status == 404, path
    assert "Uncaught exception" not in server.logs()
    assert client.get("/static/js/bokeh.min.js").status == 200
    assert client.get("/shelf/static/style.css").body == STYLE


def test_paths_out_of_the_static_directories_are_refused(
    server: ServerProcess, client: Client, dir_app: Path
) -> None:
    main = (dir_app / "main.py").read_bytes()
    for path in [
        "/static/../x",
        "/static/js/../../__init__.py",  # bokeh/server/__init__.py, next to the static dir
        "/static/%2e%2e/__init__.py",
        "/static/js/..%2f..%2f__init__.py",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/demo/static/%2E%2E/__init__.py",
        "/shelf/static/../main.py",
        "/shelf/static/%2e%2e/main.py",
        "/shelf/static/..%2fmain.py",
        "/shelf/static/up/main.py",  # a symlink to the app directory
        "/shelf/static/self/up/main.py",
        "/shelf/static/escape.txt",  # a symlink to a file outside
        "/shelf/static/self/escape.txt",
        "/shelf/static/" + str(dir_app / "main.py"),
        "/shelf/static/" + str(dir_app / "main.py").replace("/", "%2f"),
        # absolute paths are refused even when they name a file inside: they would confirm the layout
        "/static/" + str(STATIC_DIR / "js" / "bokeh.min.js"),
        "/shelf/static/" + str(dir_app.resolve() / "static" / "style.css"),
    ]:
        reply = client.get(path)
        assert reply.status in (403, 404), (path, reply.status)
        assert SECRET not in reply.body and main not in reply.body, path


def test_range_requests_get_partial_content(client: Client) -> None:
    part = client.get("/static/js/bokeh.min.js", {"Range": "bytes=0-9", **GZIP})
    assert part.status == 206 and part.body == BOKEH_MIN[:10]
    assert part.headers["content-range"] == f"bytes 0-9/{len(BOKEH_MIN)}"
    app_part = client.get("/shelf/static/big.txt", {"Range": "bytes=10-19", **GZIP})
    assert app_part.status == 206 and app_part.body == BIG[10:20]


# -- a directory app's own static/ ------------------------------------------------------------------


def test_spellings_of_one_app_static_file_share_one_copy(server: ServerProcess, client: Client) -> None:
    canonical = client.get("/shelf/static/style.css", GZIP)
    assert canonical.status == 200 and canonical.decoded == STYLE
    before = rss(server)
    replies: dict[str, list[Reply]] = {}
    for k in range(1, 41):
        for form, path in [
            ("slashes", "/shelf/static/self" + "/" * (k + 1) + "style.css"),
            ("leading-slashes", "/shelf/static" + "/" * (k + 1) + "style.css"),  # absolute
            ("dots", "/shelf/static/" + "./" * k + "style.css"),
            ("encoded-dots", "/shelf/static/" + "%2e/" * k + "style.css"),
            ("symlink-loop", "/shelf/static/" + "self/" * k + "style.css"),
        ]:
            replies.setdefault(form, []).append(client.get(path, GZIP))
    grown = rss(server) - before
    assert_consistent(replies, STYLE, canonical)
    assert grown < 10 * MB, f"RSS grew by {grown / MB:.0f} MB over 200 spellings of one file"


def test_a_big_app_static_file_is_streamed_not_compressed_per_request(
    server: ServerProcess, client: Client
) -> None:
    first = client.get("/shelf/static/big.txt", GZIP)
    assert first.status == 200 and first.body == BIG
    assert (
        "content-encoding" not in first.headers
    )  # too big to hold: sent as it is, never gzipped per request
    before = rss(server)
    for k in range(1, 31):
        for path in [
            "/shelf/static/self" + "/" * (k + 1) + "big.txt",
            "/shelf/static/" + "self/" * k + "big.txt",
        ]:
            reply = client.get(path, GZIP)
            assert reply.status == 200 and "content-encoding" not in reply.headers and reply.body == BIG, path
    grown = rss(server) - before
    assert grown < 30 * MB, f"RSS grew by {grown / MB:.0f} MB over 60 spellings of one big file"
    assert client.get("/healthz").status == 200


def test_an_app_static_file_edited_while_serving_is_served_fresh(client: Client, dir_app: Path) -> None:
    edited = dir_app / "static" / "edited.css"
    edited.write_bytes(STYLE)
    assert client.get("/shelf/static/edited.css", GZIP).decoded == STYLE  # now held in memory
    newer = STYLE.replace(b"#123456", b"#abcdef") + b"/* edited */\n"
    edited.write_bytes(newer)
    for headers in (GZIP, {}):
        reply = client.get("/shelf/static/edited.css", headers)
        assert reply.status == 200 and reply.decoded == newer
    edited.unlink()
    assert client.get("/shelf/static/edited.css").status == 404

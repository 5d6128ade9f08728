"""The assets of BokehJS extensions (Panel's, a packaged extension's) under `P/static/extensions/`.

A real server runs a Panel app and an app built on a small packaged extension
(`tests/apps/ext/pkgs/aperture_test_ext`, put on `PYTHONPATH` as an installed package would
be). The tests request exactly the URLs the pages reference (`<script src>`, `<link href>`)
and those of Panel's CSS and bundled files, and check status, content type, gzip, ETag and the caching a `?v=` allows; with `--prefix`; in every
`--num-procs` worker; before any app imported the extension; and that unknown names, traversal
and odd spellings answer 404 without the server's memory growing. A Chromium smoke test proves
that the assets make a Panel app and the packaged extension render.
"""

from __future__ import annotations

import importlib.util
import os
import re
import string
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

from tests.support.browser import BokehPage
from tests.support.rawhttp import Client, Reply
from tests.support.servers import REPO_ROOT, ServerProcess

EXT = REPO_ROOT / "tests" / "apps" / "ext"
PANEL_APP = str(EXT / "panel_min.py")
PANEL_LOCAL_APP = str(EXT / "panel_local.py")
EXT_APP = str(EXT / "ext_app.py")
EXT_ENV = {"PYTHONPATH": str(EXT / "pkgs")}
EXT_BUNDLE = (EXT / "pkgs" / "aperture_test_ext" / "dist" / "aperture_test_ext.min.js").read_bytes()
PANEL_DIST = Path(str(importlib.util.find_spec("panel").origin)).parent / "dist"
PANEL_MIN = (PANEL_DIST / "panel.min.js").read_bytes()
GZIP = {"Accept-Encoding": "gzip"}
TEN_YEARS = 10 * 365 * 24 * 3600
MB = 1024 * 1024
PANEL_CDN = r"\(https://cdn\.holoviz\.org/panel/"
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".json": "application/json"}


def fresh_get(port: int, path: str, headers: dict[str, str] | None = None) -> Reply:
    """One request on its own connection (so a `--num-procs` server may hand it to any worker)."""
    client = Client(port)
    try:
        return client.get(path, {**(headers or {}), "Connection": "close"})
    finally:
        client.close()


class AssetLinks(HTMLParser):
    """The `src` of every `<script>` and the `href` of every `<link>` in a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href"}.get(tag)
        for name, value in attrs:
            if name == wanted and value:
                self.urls.append(value)


def page_asset_paths(client: Client, page: str) -> list[str]:
    """The asset URLs of an app page, as the browser resolves them (path and query)."""
    reply = client.get(page)
    assert reply.status == 200, (page, reply.status)
    parser = AssetLinks()
    parser.feed(reply.body.decode("utf-8"))
    return [local(urljoin(page, url)) for url in parser.urls]


def local(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def rss(server: ServerProcess) -> int:
    status = Path(f"/proc/{server.pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert match, status
    return int(match.group(1)) * 1024


def assert_served_like_bokehjs(client: Client, path: str, expected: bytes | None = None) -> Reply:
    """200 with the right type, a gzip copy, a strong ETag (304 on revalidation), caching per `?v=`."""
    reply = client.get(path, GZIP)
    assert reply.status == 200, (path, reply.status)
    suffix = Path(urlsplit(path).path).suffix
    if suffix in CONTENT_TYPES:
        assert reply.headers["content-type"].startswith(CONTENT_TYPES[suffix]), (path, reply.headers)
    if len(reply.decoded) >= 512 and suffix in CONTENT_TYPES:
        assert reply.headers.get("content-encoding") == "gzip", (path, reply.headers)
        assert "Accept-Encoding" in reply.headers.get("vary", ""), (path, reply.headers)
    if expected is not None:
        assert reply.decoded == expected, path
    etag = reply.headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]{128}"', etag), (path, etag)
    cache_control = reply.headers.get("cache-control", "")
    if "v=" in urlsplit(path).query:
        assert f"max-age={TEN_YEARS}" in cache_control and "immutable" in cache_control, (path, reply.headers)
    else:
        assert "immutable" not in cache_control, (path, reply.headers)
    revalidated = client.get(path, {**GZIP, "If-None-Match": etag})
    assert revalidated.status == 304 and revalidated.body == b"", path
    plain = client.get(path)
    assert plain.status == 200 and "content-encoding" not in plain.headers and plain.body == reply.decoded
    head = client.get(path, method="HEAD")
    assert head.status == 200 and head.body == b"", path
    return reply


@pytest.fixture(scope="module")
def server(module_server_factory) -> ServerProcess:
    return module_server_factory([PANEL_APP, PANEL_LOCAL_APP, EXT_APP], env=EXT_ENV)


@pytest.fixture
def client(server: ServerProcess) -> Iterator[Client]:
    c = Client(server.port or 0)
    yield c
    c.close()


@pytest.fixture(scope="module", autouse=True)
def linux_only() -> None:
    if not sys.platform.startswith("linux") and os.environ.get("CI") != "true":
        pytest.skip("reads /proc/<pid>/status")


# -- the URLs the pages use -------------------------------------------------------------------------


def test_every_asset_of_a_panel_page_is_served_like_bokehjs(server: ServerProcess, client: Client) -> None:
    paths = page_asset_paths(client, "/panel_min")
    extensions = [p for p in paths if p.startswith("/static/extensions/")]
    assert any(
        re.fullmatch(r"/static/extensions/panel/panel\.min\.js\?v=[0-9a-f]{64}", p) for p in extensions
    ), paths
    for path in paths:
        assert_served_like_bokehjs(client, path, PANEL_MIN if "/panel.min.js" in path else None)


def test_panels_css_images_and_bundled_files_are_served(client: Client) -> None:
    # As `panel serve` links them (bokeh serve's pages take Panel's CSS from its CDN instead).
    for path in [
        "/static/extensions/panel/css/loading.css?v=1.9.4",
        "/static/extensions/panel/bundled/theme/default.css?v=1.9.4",
        "/static/extensions/panel/images/favicon.ico",
        "/static/extensions/panel/bundled/datatabulator/tabulator-tables@6.4.0/dist/js/tabulator.min.js",
    ]:
        file = PANEL_DIST / urlsplit(path).path.removeprefix("/static/extensions/panel/")
        assert_served_like_bokehjs(client, path, file.read_bytes())


def test_a_packaged_extension_without_package_json_is_served_from_its_dist(client: Client) -> None:
    paths = page_asset_paths(client, "/ext_app")
    bundle = "/static/extensions/aperture_test_ext/aperture_test_ext.min.js"
    assert bundle in paths, paths  # no package.json, hence no version: Bokeh links it without ?v=
    assert_served_like_bokehjs(client, bundle, EXT_BUNDLE)


def test_range_requests_get_partial_content(client: Client) -> None:
    part = client.get("/static/extensions/panel/panel.min.js", {"Range": "bytes=0-9", **GZIP})
    assert part.status == 206 and part.body == PANEL_MIN[:10]
    assert part.headers["content-range"] == f"bytes 0-9/{len(PANEL_MIN)}"


def test_an_app_path_static_dir_mirrors_the_extensions_too(client: Client) -> None:
    # Panel links some assets relative to the page ("static/extensions/panel/..."); opened as
    # /panel_min/ the browser asks for /panel_min/static/extensions/..., as for BokehJS at /panel_min/static/.
    reply = client.get("/panel_min/static/extensions/panel/panel.min.js", GZIP)
    assert reply.status == 200 and reply.decoded == PANEL_MIN


# -- when the extension's Python package was never imported -----------------------------------------


def test_installed_extensions_are_served_before_any_app_imported_them(server_factory) -> None:
    # bokeh serve answers 404 here until a session of this very process imported the package,
    # which breaks pages whose assets land on another --num-procs worker (see the next test).
    # Here no app even uses the extensions: they are served because they are installed.
    fresh = server_factory([str(REPO_ROOT / "tests" / "apps" / "demo.py")], env=EXT_ENV)
    client = Client(fresh.port or 0)
    try:
        assert_served_like_bokehjs(client, "/static/extensions/panel/panel.min.js", PANEL_MIN)
        assert_served_like_bokehjs(client, "/static/extensions/panel/css/loading.css?v=1")
        assert_served_like_bokehjs(
            client, "/static/extensions/aperture_test_ext/aperture_test_ext.min.js", EXT_BUNDLE
        )
    finally:
        client.close()


def test_every_worker_serves_the_extensions_of_a_page_another_worker_rendered(server_factory) -> None:
    server = server_factory([PANEL_APP, EXT_APP], ["--num-procs", "2"], env=EXT_ENV)
    port = server.port or 0
    client = Client(port)
    try:
        panel = [p for p in page_asset_paths(client, "/panel_min") if "/extensions/" in p]
        ext = [p for p in page_asset_paths(client, "/ext_app") if "/extensions/" in p]
    finally:
        client.close()
    assert panel and ext
    for _ in range(30):  # fresh connections: the kernel spreads them over both workers
        for path, expected in [(panel[-1], PANEL_MIN), (ext[-1], EXT_BUNDLE)]:
            reply = fresh_get(port, path, GZIP)
            assert reply.status == 200 and reply.decoded == expected, (path, reply.status)
    assert "Traceback" not in server.logs()


# -- behind --prefix ---------------------------------------------------------------------------------


def test_under_a_prefix(server_factory) -> None:
    server = server_factory([PANEL_APP, EXT_APP], ["--prefix", "/pfx"], env=EXT_ENV)
    client = Client(server.port or 0)
    try:
        paths = page_asset_paths(client, "/pfx/panel_min")
        assert any(p.startswith("/pfx/static/extensions/panel/panel.min.js?v=") for p in paths), paths
        paths += page_asset_paths(client, "/pfx/ext_app")
        assert "/pfx/static/extensions/aperture_test_ext/aperture_test_ext.min.js" in paths, paths
        for path in paths:
            assert_served_like_bokehjs(client, path)
        assert client.get("/static/extensions/panel/panel.min.js").status == 404
    finally:
        client.close()


# -- unknown names, traversal, odd spellings ---------------------------------------------------------


def test_unknown_names_and_traversal_answer_404(server: ServerProcess, client: Client) -> None:
    panel_init = (PANEL_DIST.parent / "__init__.py").read_bytes()
    for path in [
        "/static/extensions/",
        "/static/extensions/panel",
        "/static/extensions/panel/",
        "/static/extensions/panel/css",
        "/static/extensions/nosuch/nosuch.min.js",
        "/static/extensions/bokeh/js/bokeh.min.js",  # a package, but no extension
        "/static/extensions/os/os.py",
        "/static/extensions/json/__init__.py",
        "/static/extensions/panel.io/resources.py",  # only top-level packages are extensions
        "/static/extensions/panel/../__init__.py",
        "/static/extensions/panel/%2e%2e/__init__.py",
        "/static/extensions/panel/..%2f__init__.py",
        "/static/extensions/panel/css/../../__init__.py",
        "/static/extensions/panel%2f..%2f__init__.py",
        "/static/extensions/..%2fpanel/__init__.py",
        "/static/extensions/../js/bokeh.min.js",
        "/static/extensions/%2e%2e/js/bokeh.min.js",
        "/static/extensions/panel//etc/passwd",
        "/static/extensions/panel/%2fetc%2fpasswd",
        "/static/extensions/panel/" + str(PANEL_DIST / "panel.min.js"),
        "/static/extensions/panel/%00",
        "/static/extensions/panel/panel.min.js%00",
        "/static/extensions/%00/x.js",
        "/static/extensions/%ff/x.js",
        "/static/extensions/panel/%c3%28.js",
        "/static/extensions/aperture_test_ext/../__init__.py",
        "/static/extensions/aperture_test_ext/%2e%2e/__init__.py",
        "/static/extensions/this/this.js",  # importing `this` prints the Zen of Python
        "/static/extensions/antigravity/x.js",
    ]:
        for method in ("GET", "HEAD"):
            reply = client.get(path, method=method)
            assert reply.status in (403, 404), (path, method, reply.status)
            assert panel_init not in reply.body, path
    assert client.get("/static/extensions/panel/panel.min.js").status == 200
    logs = server.logs()
    assert "Uncaught exception" not in logs and "Traceback" not in logs
    assert "Beautiful is better than ugly" not in logs  # looking a name up never runs a module


def test_many_odd_paths_neither_grow_memory_nor_break_the_cache(
    server: ServerProcess, client: Client
) -> None:
    canonical = client.get("/static/extensions/panel/panel.min.js", GZIP)
    assert canonical.status == 200 and canonical.decoded == PANEL_MIN
    assert client.get("/static/extensions/nosuch0/x.js").status == 404
    before = rss(server)
    letters = string.ascii_lowercase
    pad = "x" * 150
    for i in range(3000):
        name = "".join(letters[(i // 26**k) % 26] for k in range(4)) + pad  # 3000 unknown names
        assert client.get(f"/static/extensions/{name}/{name}.min.js").status == 404, name
        missing = "/".join(f"{pad}{i}-{j}" for j in range(12))  # missing files under a known name
        assert client.get(f"/static/extensions/panel/{missing}.js").status == 404
    for k in range(1, 101):  # spellings of one file: one copy
        for path in [
            "/static/extensions/panel/images" + "/" * (k + 1) + "../panel.min.js",
            "/static/extensions/panel/" + "./" * k + "panel.min.js",
            "/static/extensions/panel/" + "%2e/" * k + "panel.min.js",
            "/static/extensions/panel/" + "css/../" * k + "panel.min.js",
        ]:
            reply = client.get(path, GZIP)
            assert reply.status == 200 and reply.body == canonical.body, path[:80]
    grown = rss(server) - before
    assert grown < 12 * MB, f"RSS grew by {grown / MB:.1f} MB over 6000 misses and 400 spellings"
    assert client.get("/healthz").status == 200


# -- in a browser ------------------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.parametrize("page_path", ["/panel_min", "/panel_min/", "/panel_local", "/panel_local/"])
def test_a_panel_app_renders_in_chromium(
    server: ServerProcess, bokeh_page: BokehPage, page_path: str
) -> None:
    statuses: dict[str, int] = {}
    bokeh_page.page.on("response", lambda r: statuses.__setitem__(r.url, r.status))
    bokeh_page.open(server.url(page_path))
    types = bokeh_page.page.evaluate(
        "() => { const root = Bokeh.documents[0].roots()[0];"
        " return [root.type, ...root.children.map((child) => child.type)]; }"
    )
    assert types[0].startswith("panel.models.") and "panel.models.widgets.Button" in types, types
    extension = [url for url in statuses if "/static/extensions/panel/" in url]
    assert any("/panel.min.js?v=" in url for url in extension), statuses
    assert all(statuses[url] in (200, 304) for url in extension), statuses
    if page_path.startswith("/panel_local"):  # every stylesheet from this server
        assert any(re.search(r"/static/extensions/panel/css/\w+\.css\?v=", url) for url in extension), (
            statuses
        )
        bokeh_page.assert_no_errors()
    else:  # as under bokeh serve, Panel links its CSS on its CDN, unreachable here
        bokeh_page.assert_no_errors(ignore=(PANEL_CDN,))


@pytest.mark.browser
def test_a_packaged_extension_renders_in_chromium(server: ServerProcess, bokeh_page: BokehPage) -> None:
    bokeh_page.open(server.url("/ext_app"))
    marked = bokeh_page.page.evaluate(
        "() => { const m = Bokeh.documents[0].get_model_by_name('ext');"
        " return [m.type, Bokeh.index.find_one(m).el.dataset.extension]; }"
    )
    assert marked == ["aperture_test_ext.ExtDiv", "aperture_test_ext"], marked
    assert bokeh_page.view_text("ext") == "drawn by an extension"
    bokeh_page.assert_no_errors()

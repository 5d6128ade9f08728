"""`--dev` restarts the server once per burst of changes, on the same port, and only for files that matter.

Each test edits the files of a real `aperture serve --dev` process the way editors and tools do
(bursts of writes, a write to a temporary file renamed over the original, build and editor litter
beside the app) and reads the supervisor's log: one `A watched file changed` line per restart, and
one `Bokeh app running at:` line per child started.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.servers import ServerProcess
from tests.support.wsclient import BokehClient, Closed, fetch_token, ws_url

RESTARTED = "A watched file changed; restarting the server"
STARTED = "Bokeh app running at:"
SOURCE = "from bokeh.io import curdoc\ncurdoc().title = {!r}\n"
# Long enough after the last write for a second restart to show up in the log: a burst ends
# 0.3 s after its last change (and runs 3 s at most).
SETTLE_SECONDS = 3.0


def page_title(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            match = re.search(r"<title>(.*?)</title>", response.read().decode())
    except OSError:  # the server is restarting
        return None
    return match.group(1) if match else None


def wait_for_title(url: str, title: str, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = page_title(url)
        if seen == title:
            return
        time.sleep(0.2)
    raise AssertionError(f"{url} still has title {seen!r}, not {title!r}")


def restarts(server: ServerProcess) -> int:
    return server.logs().count(RESTARTED)


def settled_restarts(server: ServerProcess) -> tuple[int, int]:
    """(restarts, children started) once the log has been quiet for a while."""
    time.sleep(SETTLE_SECONDS)
    assert server.running, server.logs()
    return restarts(server), server.logs().count(STARTED)


def directory_app(tmp_path: Path, name: str) -> Path:
    app = tmp_path / name
    app.mkdir()
    (app / "main.py").write_text(SOURCE.format("version-1"))
    return app


def test_a_burst_of_writes_restarts_the_server_once(server_factory, tmp_path):
    app = directory_app(tmp_path, "burst")
    (app / "helper.py").write_text("VALUE = 0\n")
    server = server_factory([str(app)], ["--dev"])
    url = server.url("/burst")
    assert page_title(url) == "version-1"

    # A formatter or a `git checkout` rewriting the app's files: many writes, about a second in all.
    for i in range(40):
        (app / "helper.py").write_text(f"VALUE = {i}\n")
        (app / "main.py").write_text(SOURCE.format(f"draft-{i}"))
        time.sleep(0.03)
    (app / "main.py").write_text(SOURCE.format("version-2"))

    wait_for_title(url, "version-2")
    assert settled_restarts(server) == (1, 2), server.logs()


@pytest.mark.parametrize("keep_mtime", [False, True], ids=["new-mtime", "kept-mtime"])
def test_an_atomic_save_restarts_the_server(server_factory, tmp_path, keep_mtime):
    app = tmp_path / "atomic.py"
    app.write_text(SOURCE.format("version-1"))
    server = server_factory([str(app)], ["--dev"])
    url = server.url("/atomic")
    assert page_title(url) == "version-1"

    # Editors (gedit, JetBrains "safe write") and `rsync`/`cp -p` write a temporary file beside the
    # original and rename it over it; `rsync -t` and `cp -p` also carry the old modification time.
    before = app.stat()
    temporary = tmp_path / ".goutputstream-X1Y2Z3"
    temporary.write_text(SOURCE.format("version-2"))
    if keep_mtime:
        os.utime(temporary, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(temporary, app)

    wait_for_title(url, "version-2")
    assert settled_restarts(server) == (1, 2), server.logs()


def test_a_file_deleted_and_recreated_restarts_the_server(server_factory, tmp_path):
    app = tmp_path / "recreated.py"
    app.write_text(SOURCE.format("version-1"))
    server = server_factory([str(app)], ["--dev"])
    url = server.url("/recreated")
    assert page_title(url) == "version-1"

    app.unlink()  # some editors and tools remove the file, then write it afresh
    app.write_text(SOURCE.format("version-2"))

    wait_for_title(url, "version-2")
    assert server.running, server.logs()


def test_build_and_editor_litter_does_not_restart_the_server(server_factory, tmp_path):
    app = directory_app(tmp_path, "litter")
    server = server_factory([str(app)], ["--dev"])
    url = server.url("/litter")
    assert page_title(url) == "version-1"

    (app / "__pycache__").mkdir()
    (app / "__pycache__" / "helper.cpython-311.pyc").write_bytes(b"\x00" * 64)
    (app / ".main.py.swp").write_bytes(b"vim swap")  # vim
    (app / "main.py~").write_text("backup")  # emacs, gedit
    (app / ".#main.py").write_text("lock")  # emacs
    (app / ".git").mkdir()
    (app / ".git" / "index").write_bytes(b"DIRC")
    assert settled_restarts(server) == (0, 1), server.logs()

    # The watcher is live: a real edit still restarts the server, once.
    (app / "main.py").write_text(SOURCE.format("version-2"))
    wait_for_title(url, "version-2")
    assert settled_restarts(server) == (1, 2), server.logs()


async def _reconnect(url: str, token: str, timeout: float = 40.0) -> BokehClient:
    """Connect again until the restarted server answers, as BokehJS does after a lost connection."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await BokehClient.connect(url, token)
        except (OSError, Closed, AssertionError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.25)


async def test_an_open_page_reconnects_to_the_restarted_server_on_the_same_port(server_factory, tmp_path):
    app = tmp_path / "page.py"
    app.write_text(SOURCE.format("version-1"))
    server = server_factory([str(app)], ["--dev", "--port", "0"], port=None)
    port = int(server.wait_for_log(r"Bokeh app running at: http://127\.0\.0\.1:(\d+)/").group(1))
    server.port = port
    page = server.url("/page")
    token = fetch_token(page)
    client = await BokehClient.connect(ws_url(page), token)
    assert (await client.pull()).content["doc"]["title"] == "version-1"

    app.write_text(SOURCE.format("version-2"))
    await client.closed(timeout=40)  # the old server went away with the page's connection

    # The page's own token (still valid) opens its session on the new server, at the same address.
    client = await _reconnect(ws_url(page), token)
    try:
        assert (await client.pull()).content["doc"]["title"] == "version-2"
    finally:
        await client.close()
    assert f"Bokeh app running at: http://127.0.0.1:{port}/page" in server.logs().split(RESTARTED, 1)[1]
    assert restarts(server) == 1, server.logs()

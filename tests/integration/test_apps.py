"""Kinds of apps: directory apps with hooks and templates, notebooks, --args, clean-up."""

from __future__ import annotations

import asyncio
import re
import threading
import time
import urllib.request

import pytest
from bokeh.client import pull_session
from bokeh.models import Div

import aperture
from tests.support.wsclient import BokehClient, fetch_token, ws_url

APPS = "tests/apps"


def get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=20) as r:
        return r.read().decode()


def wait_for(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def dirapp(server_factory, tmp_path):
    events = tmp_path / "events.txt"
    server = server_factory(
        [f"{APPS}/dirapp"],
        ["--check-unused-sessions", "100", "--unused-session-lifetime", "200"],
        env={"DIRAPP_EVENTS": str(events)},
    )
    return server, events


def test_directory_app_template_static_theme_and_async_hooks(dirapp):
    server, events = dirapp
    page = get_text(server.url("/dirapp?name=ada"))
    assert '<h1 id="banner">DIRAPP-BANNER</h1>' in page
    assert "<title>dirapp</title>" in page
    assert "#123456" in get_text(server.url("/dirapp/static/style.css"))
    token = re.search(r'"token":"([^"]+)"', page).group(1)  # type: ignore[union-attr]
    from bokeh.util.token import get_session_id, get_token_payload

    assert get_token_payload(token)["from_request_handler"] == "/dirapp"
    with pull_session(url=server.url("/dirapp"), session_id=get_session_id(token)) as session:
        greeting = session.document.get_model_by_name("greeting")
        assert greeting.text == "greeting=ada"  # set by an async on_session_created hook
        assert greeting.styles == {"color": "rgb(1, 2, 3)"}  # from theme.yaml
    assert wait_for(lambda: "session_destroyed True" in events.read_text())
    lines = events.read_text().splitlines()
    assert lines[0] == "server_loaded" and "session_created" in lines


def test_notebook_app(server_factory):
    server = server_factory([f"{APPS}/notebook_app.ipynb"])
    with pull_session(url=server.url("/notebook_app")) as session:
        assert session.document.get_model_by_name("nb").text == "from a notebook"


def test_args_reach_every_app_and_module_name(server_factory):
    server = server_factory([f"{APPS}/argv_app.py"], ["--args", "--flag", "value"])
    with pull_session(url=server.url("/argv_app")) as session:
        assert session.document.get_model_by_name("argv").text == "--flag value"
        assert session.document.get_model_by_name("modname").text.startswith("bokeh_app_")


def test_glob_serves_every_match(server_factory):
    server = server_factory([f"{APPS}/tick*.py", f"{APPS}/dem?.py"], ["--glob"])
    server.wait_for_log(r"running at: \S+/ticker")
    server.wait_for_log(r"running at: \S+/demo")


def test_unused_sessions_are_discarded_and_come_back_from_a_token(server_factory):
    server = server_factory(
        [f"{APPS}/demo.py"], ["--check-unused-sessions", "100", "--unused-session-lifetime", "200"]
    )
    page = server.url("/demo")
    token = fetch_token(page)

    async def reconnect_after_discard():
        await asyncio.sleep(0.8)  # the page's session was never connected: it is gone now
        client = await BokehClient.connect(ws_url(page), token)
        reply = await client.pull()
        await client.close()
        return reply.content["doc"]["title"]

    assert asyncio.run(reconnect_after_discard()) == "demo"


def test_library_server_on_own_loop():
    def make_doc(doc):
        doc.add_root(Div(text="from a function", name="fn"))

    async def main():
        server = aperture.Server({"/fn": make_doc}, port=0, address="127.0.0.1")
        await server.start()
        try:
            url = f"http://127.0.0.1:{server.port}/fn"
            html = await asyncio.to_thread(get_text, url)
            assert "data-root-id" in html
            token = re.search(r'"token":"([^"]+)"', html).group(1)  # type: ignore[union-attr]
            client = await BokehClient.connect(ws_url(url), token)
            doc = (await client.pull()).content["doc"]
            await client.close()
            assert doc["roots"][0]["attributes"]["text"] == "from a function"
        finally:
            await server.stop()

    asyncio.run(main())


def test_library_server_in_a_thread():
    def make_doc(doc):
        from bokeh.io import curdoc

        doc.add_root(Div(text="same" if curdoc() is doc else "different", name="who"))

    server = aperture.Server({"/fn": make_doc}, port=0, address="127.0.0.1")
    server.bind()
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: server.core._started)
        with pull_session(url=f"http://127.0.0.1:{server.port}/fn") as session:
            assert session.document.get_model_by_name("who").text == "same"
    finally:
        server.shutdown()
        thread.join(10)
    assert not thread.is_alive()


def test_dev_mode_restarts_on_change(server_factory, tmp_path):
    app = tmp_path / "live.py"
    source = "from bokeh.io import curdoc\ncurdoc().title = {!r}\n"
    app.write_text(source.format("version-1"))
    server = server_factory([str(app)], ["--dev"])
    assert "<title>version-1</title>" in get_text(server.url("/live"))
    time.sleep(1.1)  # make sure the modification time moves on coarse file systems
    app.write_text(source.format("version-2"))

    def reloaded():
        try:
            return "<title>version-2</title>" in get_text(server.url("/live"))
        except OSError:  # the server is restarting
            return False

    assert wait_for(reloaded, timeout=30)

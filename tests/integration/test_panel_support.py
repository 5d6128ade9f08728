"""What `panel serve` gives Panel apps that `bokeh serve` does not, under Aperture (issue 9, item 4).

Panel does its part of each session in its own Bokeh `Application` subclass, which only
`panel serve` uses; Aperture calls it for apps that imported Panel (aperture/apps/panel_support.py).
Checked against real servers with real Panel apps (tests/apps/panel_support/): `pn.state.onload`
callbacks run once the page reports its document ready (sent here as BokehJS sends it, and in
Chromium by BokehJS itself), not before; process-wide `pn.state.on_session_created` /
`on_session_destroyed` callbacks and `pn.state.cache` set up in `app_hooks.py` (Aperture's
`--setup`) work; a template chosen with `pn.extension(template=...)` is rendered;
`pn.state.block_expiration()` keeps a session; Panel's component stylesheets come from this
server rather than Panel's CDN. And Aperture loads Panel only for apps that do.
"""

from __future__ import annotations

import ast
import asyncio
import json
import re
import subprocess
import sys
import time
from typing import Any
from urllib.parse import urljoin

import pytest
from bokeh.util.token import get_session_id

from tests.support.browser import BokehPage, launch_chromium
from tests.support.servers import REPO_ROOT, LogMark
from tests.support.wsclient import BokehClient, Received, fetch_token, ws_url
from tests.test_layering import PACKAGE, imports_of

APPS = "tests/apps/panel_support"
REAP_ARGS = ["--unused-session-lifetime", "300", "--check-unused-sessions", "100"]
ALLOW_SELF = "--allow-websocket-origin=127.0.0.1:{port}"
# What BokehJS sends once every root of the page has rendered (spec: protocol captures).
DOCUMENT_READY = {
    "events": [
        {
            "kind": "MessageSent",
            "msg_type": "bokeh_event",
            "msg_data": {"type": "event", "name": "document_ready", "values": {"type": "map"}},
        }
    ]
}
TROUBLE = re.compile(r"Traceback|Error in |KeyError|AttributeError")
ONLY_APERTURE = "bokeh serve does not do Panel's part of a session"


def assert_clean(log: str) -> None:
    assert not TROUBLE.search(log), f"trouble in the server log:\n{log[-6000:]}"


async def open_session(url: str) -> tuple[BokehClient, str, str]:
    """Page, websocket, PULL-DOC: the client, the session id and the pulled document as JSON text."""
    token = await asyncio.to_thread(fetch_token, url)
    client = await BokehClient.connect(ws_url(url.split("?")[0]), token)
    pulled = await client.pull()
    return client, get_session_id(token), json.dumps(pulled.content)


async def patches_until(client: BokehClient, texts: list[str], timeout: float = 20) -> list[Received]:
    """Read messages until PATCH-DOCs have carried every one of `texts`; returns what was read."""
    seen: list[Received] = []
    missing = list(texts)
    deadline = time.monotonic() + timeout
    while missing:
        message = await client.recv(timeout=max(0.1, deadline - time.monotonic()))
        seen.append(message)
        if message.msgtype == "PATCH-DOC":
            body = json.dumps(message.content)
            missing = [text for text in missing if text not in body]
    return seen


# -- pn.state.onload -----------------------------------------------------------------------------


@pytest.mark.timeout(120)
async def test_onload_callbacks_run_once_the_page_reports_its_document_ready(server_factory, serving_bokeh):
    if serving_bokeh:
        pytest.skip(ONLY_APERTURE)
    server = server_factory([f"{APPS}/onload.py"])
    url = server.url("/onload")
    mark = LogMark(server)
    client, _, pulled = await open_session(url)
    try:
        assert "sync: waiting" in pulled and "async: waiting" in pulled
        await asyncio.sleep(0.5)
        assert "panel-support onload" not in mark.new(), "onload ran before the page was ready"
        await client.send("PATCH-DOC", DOCUMENT_READY)
        # The periodic callback the sync one starts must tick (Panel starts it only from the thread
        # that built the document: elsewhere it retried on every tick, for ever).
        await patches_until(client, ["sync: loaded", "async: loaded", "ticks: 3"])
    finally:
        await client.close()
    log = mark.new()
    assert log.count("panel-support onload: sync") == 1 and log.count("panel-support onload: async") == 1
    assert_clean(log)


@pytest.mark.browser
@pytest.mark.timeout(120)
def test_onload_callbacks_run_in_a_browser(server_factory, serving_bokeh):
    if serving_bokeh:
        pytest.skip(ONLY_APERTURE)
    server = server_factory([f"{APPS}/onload.py"], [ALLOW_SELF])
    mark = LogMark(server)
    # Its own browser, closed at the end: Playwright's event loop must not outlive this (sync) test.
    with launch_chromium() as chromium:
        bokeh_page = BokehPage(chromium.new_page())
        bokeh_page.open(server.url("/onload"), timeout_ms=60_000)
        loaded = (("sync-status", "sync: loaded"), ("async-status", "async: loaded"), ("ticks", "ticks: 5"))
        for css_class, text in loaded:
            bokeh_page.page.locator(f".{css_class}").get_by_text(text).wait_for(timeout=15_000)
        bokeh_page.assert_no_errors()
    assert_clean(mark.new())


# -- pn.extension(template=...) -----------------------------------------------------------------


@pytest.mark.timeout(120)
async def test_a_template_chosen_in_pn_extension_is_rendered(server_factory, serving_bokeh):
    if serving_bokeh:
        pytest.skip(ONLY_APERTURE + " (its page stays empty)")
    server = server_factory([f"{APPS}/config_template.py"])
    url = server.url("/config_template")
    mark = LogMark(server)
    page = await asyncio.to_thread(lambda: _get(url).read().decode("utf-8"))
    assert "<title>config template</title>" in page
    client, _, pulled = await open_session(url)
    await client.close()
    assert "in the main area" in pulled and "in the sidebar" in pulled
    assert_clean(mark.new())


# -- process-wide hooks, cache, block_expiration ---------------------------------------------------


@pytest.mark.timeout(120)
async def test_panel_session_hooks_and_cache_set_up_in_app_hooks(server_factory, serving_bokeh):
    if serving_bokeh:
        pytest.skip(ONLY_APERTURE)
    server = server_factory([f"{APPS}/hooks"], REAP_ARGS)
    url = server.url("/hooks")
    mark = LogMark(server)
    client, session_id, pulled = await open_session(url)
    await client.close()
    assert "hello from on_server_loaded" in pulled
    mark.wait_for(f"panel-support destroyed {re.escape(session_id)}", timeout=30)
    log = mark.new()
    created = log.index(f"panel-support created {session_id}")
    assert created < log.index(f"panel-support built {session_id}"), "created after the app ran"
    assert_clean(log)


@pytest.mark.timeout(120)
async def test_block_expiration_keeps_a_session(server_factory, serving_bokeh):
    if serving_bokeh:
        pytest.skip(ONLY_APERTURE)
    server = server_factory([f"{APPS}/hooks"], REAP_ARGS)
    url = server.url("/hooks")
    mark = LogMark(server)
    kept, kept_id, _ = await open_session(url + "?block=1")
    await kept.send("PATCH-DOC", DOCUMENT_READY)  # its onload callback blocks expiration
    mark.wait_for(f"panel-support blocked {re.escape(kept_id)}", timeout=30)
    await kept.close()
    other, other_id, _ = await open_session(url)
    await other.close()
    mark.wait_for(f"panel-support destroyed {re.escape(other_id)}", timeout=30)
    await asyncio.sleep(1.0)  # several checks for unused sessions later
    assert f"panel-support destroyed {kept_id}" not in mark.new()
    assert_clean(mark.new())


# -- Panel's stylesheets ---------------------------------------------------------------------------


@pytest.mark.timeout(120)
async def test_component_stylesheets_come_from_this_server(server_factory, serving_bokeh):
    if serving_bokeh:
        pytest.skip("under bokeh serve they come from Panel's CDN")
    server = server_factory([f"{APPS}/onload.py"])
    url = server.url("/onload")
    client, _, pulled = await open_session(url)
    await client.close()
    stylesheets = set(re.findall(r'"url":\s*"([^"]+\.css[^"]*)"', pulled))
    assert stylesheets, pulled[:2000]
    assert not [s for s in stylesheets if "cdn.holoviz.org" in s], stylesheets
    for stylesheet in sorted(stylesheets):
        assert stylesheet.startswith("static/extensions/panel/"), stylesheet
        with await asyncio.to_thread(_get, urljoin(url, stylesheet)) as response:
            assert response.status == 200 and b"{" in response.read(), stylesheet


def _get(url: str) -> Any:
    import urllib.request

    return urllib.request.urlopen(url, timeout=20)


# -- Aperture loads Panel only for apps that do ----------------------------------------------------


def test_only_panel_support_imports_panel_and_only_when_called():
    importers = [
        p for p in sorted(PACKAGE.rglob("*.py")) if any(n.split(".")[0] == "panel" for n in imports_of(p))
    ]
    assert [p.relative_to(PACKAGE).as_posix() for p in importers] == ["apps/panel_support.py"]
    module = ast.parse(importers[0].read_text(encoding="utf-8"))
    top_level: list[str] = []
    for node in module.body:
        if isinstance(node, ast.Import):
            top_level += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            top_level.append(node.module)
    assert not [name for name in top_level if name.split(".")[0] == "panel"], top_level


def test_importing_aperture_loads_no_panel():
    code = (
        "import sys, aperture.cli, aperture.server, aperture.apps.runner, aperture.sessions.session; "
        "sys.exit(1 if 'panel' in sys.modules else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.timeout(120)
async def test_serving_a_plain_bokeh_app_loads_no_panel(server_factory):
    server = server_factory([f"{APPS}/plain_bokeh"], REAP_ARGS)
    url = server.url("/plain_bokeh")
    mark = LogMark(server)
    client, _, _ = await open_session(url)
    await client.send("PATCH-DOC", DOCUMENT_READY)
    await asyncio.sleep(0.5)
    await client.close()
    mark.wait_for(r"plain-bokeh panel imported: \w+ \(session destroyed\)", timeout=30)
    await asyncio.to_thread(server.stop)
    log = mark.new()
    assert "plain-bokeh panel imported: False (session destroyed)" in log, log[-3000:]
    assert "plain-bokeh panel imported: False (server unloaded)" in log, log[-3000:]

"""A crafted `?bokeh-token=` link in Chromium: the visitor's HttpOnly cookie goes nowhere else.

The attack of issue 8: a link to a real `--num-procs` server carries a token whose owner hint
names the attacker's listener. Whichever worker the page's websocket lands on, the session is
built there, the page works, and the listener never sees a connection (so never the cookie).
"""

from __future__ import annotations

import time

import pytest
from bokeh.util.token import generate_jwt_token, generate_session_id

from tests.integration.test_relay_trust import Listener

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


def test_crafted_token_link_leaks_no_cookie(server_factory, chromium) -> None:
    server = server_factory(
        ["tests/apps/demo.py"], ["--num-procs", "2", "--allow-websocket-origin=127.0.0.1:{port}"]
    )
    for _ in range(2):
        server.wait_for_log(r"Worker \d serving with process id")
    spy = Listener()
    try:
        chromium.add_cookies(
            [{"name": "sid", "value": "victim-secret", "url": server.base_url, "httpOnly": True}]
        )
        for _ in range(4):  # the websocket lands on either worker
            session_id = generate_session_id(signed=False)
            token = generate_jwt_token(
                session_id, signed=False, extra_payload={"__ap_owner": f"127.0.0.1:{spy.port}"}
            )
            page = chromium.new_page()
            try:
                page.goto(server.url(f"/demo?bokeh-token={token}"))
                # The page's websocket opened its session on whichever worker it reached. (A
                # worker that did not build the page's session renders nothing: its document
                # has other model ids. That is the attacker's loss, not the visitor's.)
                server.wait_for_log(f"Websocket opened for session '{session_id[:12]}'", timeout=20)
            finally:
                page.close()
        time.sleep(0.3)
        assert spy.received == [], spy.received
        assert "Ignored an owner hint" in server.logs()
    finally:
        chromium.clear_cookies()
        spy.close()

"""Admission control behind the shipped nginx load balancer (deploy/nginx/load-balancer.conf).

Two Aperture instances sharing BOKEH_SECRET_KEY; A holds its one allowed session (`--max-sessions 1`),
B has room for three. nginx's `proxy_next_upstream ... http_503` sends a view that A refuses on to B,
so every user gets a page; the pages' websockets work wherever nginx sends them (an instance relays
to the session's owner, so the full A still serves its existing session). Once B is full too, the
user gets Aperture's own 503 page with Retry-After through nginx. The template has three backend
lines; B fills two of them (twice the weight), which nginx allows.
"""

from __future__ import annotations

import pytest

from tests.deploy.harness import (
    APP_PATH,
    RELAY_KEY,
    RELAY_KEY_ENV,
    Deployment,
    allow_origin,
    free_port,
    http_get,
)
from tests.support.wsclient import TOKEN_RE, BokehClient, model_id, ws_url

pytestmark = pytest.mark.timeout(90)

ROOM_ON_B = 3


def token_of(text: str) -> str:
    match = TOKEN_RE.search(text)
    assert match, text[:300]
    return match.group(1)


async def click(url: str, token: str) -> str:
    """Open the page's websocket through nginx and click the button; returns the result text."""
    client = await BokehClient.connect(ws_url(url), token)
    try:
        doc = (await client.pull()).content["doc"]
        button = model_id(doc, "button")
        event = {
            "type": "event",
            "name": "button_click",
            "values": {"type": "map", "entries": [["model", {"id": button}]]},
        }
        sent = {"kind": "MessageSent", "msg_type": "bokeh_event", "msg_data": event}
        ok, before = await client.reply_to(await client.send("PATCH-DOC", {"events": [sent]}))
        assert ok.msgtype == "OK", ok.content
        for message in before:
            for change in message.content.get("events", []):
                if change.get("attr") == "text" and str(change.get("new", "")).startswith("clicked"):
                    return str(change["new"])
        raise AssertionError("no click result")
    finally:
        await client.close()


async def test_a_full_instance_hands_views_to_one_with_room(deployment: Deployment) -> None:
    port = free_port()
    env = {RELAY_KEY_ENV: RELAY_KEY}
    common = [allow_origin(port), "--shutdown-delay", "0"]
    full = deployment.aperture([*common, "--max-sessions", "1"], env=env)
    roomy = deployment.aperture([*common, "--max-sessions", str(ROOM_ON_B)], env=env)
    held = http_get(full.url(APP_PATH))  # A's one session, taken directly
    assert held.status == 200
    assert http_get(full.url("/readyz")).status == 503
    backends = {"backend1": f"127.0.0.1:{full.port}", "backend2": f"127.0.0.1:{roomy.port}"}
    nginx = deployment.nginx(
        "nginx/load-balancer.conf",
        [port],
        listen=f"127.0.0.1:{port}",
        backend3=backends["backend2"],
        **backends,
    )
    url = f"http://127.0.0.1:{port}{APP_PATH}"
    pages = [http_get(url) for _ in range(ROOM_ON_B)]
    assert [page.status for page in pages] == [200] * ROOM_ON_B, [page.text[:200] for page in pages]
    tokens = [token_of(page.text) for page in pages]
    for token in [*tokens, token_of(held.text)]:  # B's sessions, and A's existing one, through nginx
        assert (await click(url, token)).startswith("clicked 1 ")
    # Every instance full: nginx, with no live upstream left, answers 503 + Retry-After itself.
    both_full = http_get(url)
    assert both_full.status == 503, both_full.text[:300]
    assert int(both_full.headers["Retry-After"]) > 0 and "try again" in both_full.text
    refused = [line for line in nginx.access_lines() if f'"GET {APP_PATH} ' in line]
    assert any(f"127.0.0.1:{full.port}, 127.0.0.1:{roomy.port}" in line for line in refused), refused
    full.wait_for_log(r"Refused a new session of /button: this process is at --max-sessions 1")

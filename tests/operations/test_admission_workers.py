"""Admission control with `--num-procs`: a view refused by a full worker is served by a sibling.

Two workers with `--max-sessions 1` each. One keep-alive client (so every request reaches the same
worker) gets two pages: the first is built where it landed, the second is forwarded to the sibling
over its private socket, and both pages' websockets work wherever they land (relayed to the
session's owner). A client that sends the forwarding marker itself is not forwarded; once every
worker is full, views get 503 and `/readyz` says "full".
"""

from __future__ import annotations

import gzip
import re

import pytest
from bokeh.util.token import generate_jwt_token, generate_session_id, get_token_payload

from tests.support.rawhttp import Client
from tests.support.wsclient import BokehClient, slider_round_trip, ws_url

APPS = "tests/apps"
TOKEN_RE = re.compile(r'"token":\s*"([^"]+)"')

pytestmark = pytest.mark.timeout(90)


def page_token(reply) -> str:
    match = TOKEN_RE.search(reply.decoded.decode())
    assert match, (reply.status, reply.decoded[:300])
    return match.group(1)


def owner_worker(token: str) -> str:
    """The worker number in the page's owner hint (`HOST:PORT|N`, host empty without a key)."""
    return str(get_token_payload(token)["__ap_owner"]).rpartition("|")[2]


async def test_a_view_refused_by_a_full_worker_is_served_by_its_sibling(server_factory) -> None:
    server = server_factory(
        [f"{APPS}/demo.py"], ["--num-procs", "2", "--max-sessions", "1", "--shutdown-delay", "0"]
    )
    server.wait_for_log(r"(?s)(Bokeh app running at.*){2}")  # both workers serve
    http = Client(server.port)
    try:
        first = http.get("/demo")
        assert first.status == 200
        forged = http.get("/demo", headers={"X-Aperture-Relay": "worker"})
        assert forged.status == 503, "a client's own marker only keeps it from being forwarded"
        second = http.get("/demo", headers={"Accept-Encoding": "gzip"})
        assert second.status == 200, second.decoded[:300]
        assert second.headers.get("content-encoding") == "gzip"  # the sibling's gzipped page, as it was
        assert gzip.decompress(second.body) == second.decoded
        assert "x-aperture-relay" not in second.headers
        tokens = [page_token(first), page_token(second)]
        assert owner_worker(tokens[0]) != owner_worker(tokens[1]), "built by the other worker"
        third = http.get("/demo")
        assert third.status == 503 and "retry-after" in third.headers
        assert http.get("/readyz").status == 503
    finally:
        http.close()
    for round_ in range(2):  # websockets land on either worker: relayed to the owner as needed
        for i, token in enumerate(tokens):
            await slider_round_trip(server.url("/demo"), token, 2 * round_ + i + 3)  # the slider starts at 1
    fresh = generate_jwt_token(generate_session_id(None, False), secret_key=None, signed=False)
    client = await BokehClient.connect(ws_url(server.url("/demo")), fresh, wait_ack=False)
    assert (await client.closed()).code == 1013
    assert len(re.findall(r"Refused a new session of /demo", server.logs())) >= 1

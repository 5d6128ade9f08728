"""Forwarding a refused page view to a sibling `--num-procs` worker that has room for its session.

A worker at its session limit (`aperture.operations.admission`) hands a new page or autoload.js
request to a sibling the shared board says has room, over that sibling's private Unix socket (the
one websocket relays use, see `aperture.web.relay`), and answers with what the sibling answered.
The sibling builds the session, so the page's token names it as the owner, and the page's
websocket is relayed there wherever it lands.

The forwarded request carries the client's end-to-end headers (Host, cookies, credentials and
Origin included, so the sibling's auth module and CORS answer see what this worker saw) and
`X-Aperture-Relay: worker`. A request carrying that header in any form is never forwarded again,
so a view moves at most once; a client sending it only gives up being forwarded itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from tornado.httpclient import HTTPRequest, HTTPResponse
from tornado.httputil import HTTPHeaders, HTTPServerRequest
from tornado.simple_httpclient import SimpleAsyncHTTPClient

from aperture.peers import HOP_WORKER
from aperture.web.relay import RELAY_HEADER, WORKER_HOST, UnixSocketResolver, client_tls, end_to_end_headers

log = logging.getLogger("aperture.relay")

CONNECT_TIMEOUT = 3.0
REQUEST_TIMEOUT = 300.0
"""Seconds a forwarded page view may take on the sibling: a page whose app builds slowly is slow anyway."""
HOP_BY_HOP = frozenset(
    name.lower()
    for name in (
        "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "TE",
        "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length", RELAY_HEADER,
    )
)  # fmt: skip
NOT_RETURNED = HOP_BY_HOP | {"server", "date"}


@dataclass(frozen=True)
class Answer:
    """The sibling's answer, to send on as it is (the body may be gzipped: its headers say so)."""

    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def forwarded(request: HTTPServerRequest) -> bool:
    """The request came from a sibling (or claims to): it must not be forwarded again."""
    return RELAY_HEADER in request.headers


def request_headers(headers: HTTPHeaders, request_id: str | None = None) -> dict[str, str]:
    """The client's end-to-end headers, the marker of a forwarded view, and this view's request id
    (so the sibling logs it under the same id)."""
    joined = end_to_end_headers(headers, HOP_BY_HOP)
    joined[RELAY_HEADER] = HOP_WORKER
    if request_id:
        joined["X-Request-Id"] = request_id
    return joined


async def forward_view(
    request: HTTPServerRequest, socket_path: str, *, tls: bool, request_id: str | None = None
) -> Answer | None:
    """GET the same URL from the sibling listening on `socket_path`; None if it cannot be reached."""
    scheme = "https" if tls else "http"
    target = request.path + (f"?{request.query}" if request.query else "")  # the route matched this path
    outgoing = HTTPRequest(
        f"{scheme}://{WORKER_HOST}{target}",
        method="GET",
        headers=request_headers(request.headers, request_id),
        follow_redirects=False,
        decompress_response=False,  # a gzipped page goes on gzipped, with its Content-Encoding
        connect_timeout=CONNECT_TIMEOUT,
        request_timeout=REQUEST_TIMEOUT,
        ssl_options=client_tls() if tls else None,
    )
    client = SimpleAsyncHTTPClient(force_instance=True, resolver=UnixSocketResolver(path=socket_path))
    try:
        response: HTTPResponse = await client.fetch(outgoing, raise_error=False)
    except Exception as exc:  # refused, reset, timed out
        log.info("Could not forward a page view to the worker at %s: %s", socket_path, exc)
        return None
    finally:
        client.close()
    if response.code == 599:  # Tornado's code for "no HTTP answer"
        log.info("Could not forward a page view to the worker at %s: %s", socket_path, response.error)
        return None
    headers = [
        (name, value) for name, value in response.headers.get_all() if name.lower() not in NOT_RETURNED
    ]
    return Answer(response.code, response.reason or "", headers, response.body or b"")

"""The Tornado transport to the provider: answers as they are, failures as ProviderError."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from tornado import httpserver, netutil, web

from aperture.identity.discovery import Discovery
from aperture.identity.transport import MAX_ANSWER_BYTES, ProviderError
from aperture.web.oidc_transport import TornadoTransport

pytestmark = pytest.mark.asyncio(loop_scope="module")


class Big(web.RequestHandler):
    def get(self) -> None:
        self.finish(b"x" * (MAX_ANSWER_BYTES + 1))


class Moved(web.RequestHandler):
    def get(self) -> None:
        self.redirect("https://elsewhere.example.com/.well-known/openid-configuration")


class Echo(web.RequestHandler):
    def post(self) -> None:
        self.finish({"auth": self.request.headers.get("Authorization"), "body": self.request.body.decode()})


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def base() -> AsyncIterator[str]:
    sockets = netutil.bind_sockets(0, "127.0.0.1")
    app = web.Application(
        [(r"/big", Big), (r"/moved/\.well-known/openid-configuration", Moved), (r"/echo", Echo)]
    )
    server = httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    yield f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
    server.stop()


async def test_a_post_goes_out_with_its_headers_and_body(base):
    transport = TornadoTransport()
    answer = await transport.request(
        "POST", base + "/echo", headers={"Authorization": "Basic eA=="}, body=b"a=1"
    )
    assert answer.status == 200 and answer.json_object("echo") == {"auth": "Basic eA==", "body": "a=1"}
    transport.close()


async def test_an_oversized_answer_is_a_provider_error(base):
    transport = TornadoTransport()
    with pytest.raises(ProviderError):
        await transport.request("GET", base + "/big")
    transport.close()


async def test_redirects_are_not_followed(base):
    transport = TornadoTransport()
    with pytest.raises(ProviderError, match="answered 302"):
        await Discovery(base + "/moved", transport).metadata()
    transport.close()


async def test_an_unreachable_provider_is_a_provider_error(base):
    transport = TornadoTransport()
    closed = netutil.bind_sockets(0, "127.0.0.1")[0]
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(ProviderError, match=f"127.0.0.1:{port}"):
        await transport.request("GET", f"http://127.0.0.1:{port}/x")
    transport.close()


async def test_a_non_json_answer_names_what_was_asked(base):
    transport = TornadoTransport()
    answer = await transport.request("GET", base + "/nothing-here")
    assert answer.status == 404
    with pytest.raises(ProviderError, match="discovery: the answer is not JSON"):
        answer.json_object("discovery")
    transport.close()

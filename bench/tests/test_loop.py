"""The load generator end to end against the in-process ceiling server (no timing assertions)."""

import asyncio
from pathlib import Path

from bench.ceiling import CeilingServer, _build_app
from bench.loadgen.client import Target, open_session_and_pull
from bench.loadgen.http import HTTPConnection
from bench.scenarios.common import closed_loop, slider_roundtrip

APPS = Path(__file__).parents[1] / "apps"


async def test_session_pull_patch_and_stream():
    apps = {a.name: a for a in (_build_app(str(APPS / "sliders.py")), _build_app(str(APPS / "stream.py")))}
    server = await asyncio.start_server(CeilingServer(apps).handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        sess = await open_session_and_pull(Target("127.0.0.1", port, "/sliders"), parse=True)
        slider = sess.model_ids("Slider")["amplitude"]
        assert await slider_roundtrip(sess, slider, 0) == 1
        res = await closed_loop(
            [sess], lambda s, i: slider_roundtrip(s, slider, i), duration=0.2, max_iters=20
        )
        assert res.latencies and not res.errors
        await sess.close()

        stream = await open_session_and_pull(Target("127.0.0.1", port, "/stream"))
        msg = await stream.next_message()
        assert msg.msgtype == "PATCH-DOC" and msg.content["events"][0]["kind"] == "ColumnsStreamed"
        await stream.close()

        http = HTTPConnection("127.0.0.1", port)
        resp = await http.get("/static/js/bokeh.min.js", {"Accept-Encoding": "gzip"})
        assert resp.status == 200 and resp.headers["content-encoding"] == "gzip"
        await http.close()
    finally:
        server.close()
        await server.wait_closed()


async def test_http_keepalive_retry_and_chunked():
    """A server that drops the connection after each response (no `Connection: close`) and sends
    chunked bodies: the client retries once on the dropped keep-alive connection."""

    async def handle(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        http = HTTPConnection("127.0.0.1", port)
        for _ in range(3):
            resp = await http.get("/")
            assert resp.status == 200 and resp.body == b"abcde"
            await asyncio.sleep(0.05)
        await http.close()
    finally:
        server.close()
        await server.wait_closed()

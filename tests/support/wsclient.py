"""A raw Bokeh-protocol websocket client for tests, on Tornado's websocket client.

It speaks the wire format directly (header, metadata, content text frames and
buffer frames), independently of Aperture's own protocol package, so tests can
send well-formed and malformed traffic and see exactly what the server answers.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

_ids = itertools.count(1)
TOKEN_RE = re.compile(r'"token":\s*"([^"]+)"')


def fetch_token(url: str, headers: dict[str, str] | None = None) -> str:
    """GET an app page (or autoload.js) and return the session token embedded in it."""
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=20) as response:
        body = response.read().decode("utf-8")
    match = TOKEN_RE.search(body)
    assert match, f"no token in {url}"
    return match.group(1)


def ws_url(http_url: str) -> str:
    return "ws" + http_url[len("http") :] + "/ws"


@dataclass
class Received:
    header: dict[str, Any]
    metadata: Any
    content: Any
    buffers: dict[str, bytes] = field(default_factory=dict)

    @property
    def msgtype(self) -> str:
        return str(self.header["msgtype"])


class Closed(Exception):
    def __init__(self, code: int | None, reason: str | None) -> None:
        super().__init__(f"closed with code={code} reason={reason!r}")
        self.code = code
        self.reason = reason


class BokehClient:
    """One websocket connection speaking the Bokeh protocol."""

    def __init__(self, conn: WebSocketClientConnection) -> None:
        self.conn = conn
        self._released = False  # close() has run: a second call has nothing left to wait for

    @classmethod
    async def connect(
        cls,
        url: str,
        token: str | None,
        *,
        subprotocols: list[str] | None = None,
        headers: dict[str, str] | None = None,
        wait_ack: bool = True,
        max_message_size: int = 100 * 1024 * 1024,
    ) -> BokehClient:
        protocols = subprotocols if subprotocols is not None else ["bokeh", token or ""]
        request = HTTPRequest(url, headers=headers or {})
        conn = await websocket_connect(request, subprotocols=protocols, max_message_size=max_message_size)
        client = cls(conn)
        if wait_ack:
            ack = await client.recv()
            assert ack.msgtype == "ACK", ack
        return client

    async def frame(self, timeout: float = 10.0) -> str | bytes:
        message = await asyncio.wait_for(self.conn.read_message(), timeout)
        if message is None:
            raise Closed(self.conn.close_code, self.conn.close_reason)
        return message

    async def recv(self, timeout: float = 10.0) -> Received:
        header = json.loads(await self.frame(timeout))
        metadata = json.loads(await self.frame(timeout))
        content = json.loads(await self.frame(timeout))
        buffers: dict[str, bytes] = {}
        for _ in range(header.get("num_buffers", 0)):
            buffer_header = json.loads(await self.frame(timeout))
            payload = await self.frame(timeout)
            assert isinstance(payload, bytes)
            buffers[buffer_header["id"]] = payload
        return Received(header, metadata, content, buffers)

    async def send_frames(self, *frames: str | bytes) -> None:
        for frame in frames:
            await self.conn.write_message(frame, binary=isinstance(frame, bytes))

    async def send(
        self,
        msgtype: str,
        content: Any = None,
        buffers: dict[str, bytes] | None = None,
        msgid: str | None = None,
    ) -> str:
        msgid = msgid or f"t{next(_ids)}"
        header: dict[str, Any] = {"msgid": msgid, "msgtype": msgtype}
        if buffers:
            header["num_buffers"] = len(buffers)
        frames: list[str | bytes] = [
            json.dumps(header),
            "{}",
            json.dumps(content if content is not None else {}),
        ]
        for buffer_id, payload in (buffers or {}).items():
            frames += [json.dumps({"id": buffer_id}), payload]
        await self.send_frames(*frames)
        return msgid

    async def reply_to(self, msgid: str, timeout: float = 10.0) -> tuple[Received, list[Received]]:
        """Wait for the reply to `msgid`; also return the unsolicited messages seen before it."""
        seen: list[Received] = []
        while True:
            message = await self.recv(timeout)
            if message.header.get("reqid") == msgid:
                return message, seen
            seen.append(message)

    async def request(self, msgtype: str, content: Any = None, **kw: Any) -> Received:
        reply, _ = await self.reply_to(await self.send(msgtype, content, **kw))
        return reply

    async def pull(self) -> Received:
        return await self.request("PULL-DOC-REQ")

    async def closed(self, timeout: float = 10.0) -> Closed:
        """Read until the server closes; returns the close code and reason."""
        try:
            while True:
                await self.frame(timeout)
        except Closed as closed:
            self.conn.close()  # release the client side too (no ResourceWarning later)
            return closed

    async def close(self, timeout: float = 5.0) -> None:
        """Close and wait until the socket is really gone (no ResourceWarning later)."""
        if self._released:
            return
        self._released = True
        already_closed = self.conn.close_code is not None  # the server closed it: nothing to wait for
        self.conn.close()
        if already_closed:
            return
        try:
            while await asyncio.wait_for(self.conn.read_message(), timeout) is not None:
                pass
        except (TimeoutError, Exception):
            pass


def document_objects(node: Any) -> Iterator[dict[str, Any]]:
    """Every dict in a pulled document (models, their attributes, nested values), depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from document_objects(value)
    elif isinstance(node, list):
        for value in node:
            yield from document_objects(value)


def model_id(doc_content: dict[str, Any], name: str) -> str:
    """The id of the model called `name` anywhere in a pulled document."""
    found = [
        node["id"]
        for node in document_objects(doc_content)
        if node.get("type") == "object" and node.get("attributes", {}).get("name") == name
    ]
    assert found, f"no model named {name!r}"
    return found[0]


def model_changed(model: str, attr: str, new: Any) -> dict[str, Any]:
    return {"events": [{"kind": "ModelChanged", "model": {"id": model}, "attr": attr, "new": new}]}


async def slider_round_trip(url: str, token: str, value: int) -> None:
    """A tab of the session of tests/apps/demo.py: PULL-DOC, then a PATCH-DOC moving its slider to
    `value`, whose Python callback answers with the new value before the OK."""
    client = await BokehClient.connect(ws_url(url), token)
    try:
        slider = model_id((await client.pull()).content, "slider")
        ok, before = await client.reply_to(
            await client.send("PATCH-DOC", model_changed(slider, "value", value))
        )
        assert ok.msgtype == "OK"
        assert before[0].content["events"][0]["new"] == f"value={value}"
    finally:
        await client.close()

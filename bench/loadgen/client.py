"""The load generator's Bokeh client: what a browser tab does, minus the rendering.

`BokehSession.start` = GET the app page, take the token, open `<app>/ws` with the subprotocols
`bokeh, <token>`, wait for ACK. Then `pull_doc()` (PULL-DOC-REQ -> PULL-DOC-REPLY),
`patch(events)` (PATCH-DOC -> server PATCH-DOCs ... OK) and `next_message()` for pushed patches.
Deliberately not `bokeh.client`: that one is too slow to generate load.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from .http import HTTPConnection, extract_token
from .messages import BokehMessage, MessageAssembler, encode_message, find_model_ids
from .ws import WSClient


@dataclass(slots=True)
class Target:
    """Where an app lives: host, port and app path (e.g. '/sliders')."""

    host: str
    port: int
    app: str

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"


class BokehSession:
    def __init__(self, ws: WSClient, token: str, timeout: float) -> None:
        self.ws, self.token, self.timeout = ws, token, timeout
        self._asm = MessageAssembler()
        self.doc: Any = None

    @classmethod
    async def start(
        cls, target: Target, http: HTTPConnection | None = None, timeout: float = 30.0
    ) -> BokehSession:
        own = http is None
        conn = http or HTTPConnection(target.host, target.port, timeout)
        try:
            resp = await conn.get(target.app)
        finally:
            if own:
                await conn.close()
        if resp.status != 200:
            raise ConnectionError(f"GET {target.app}: HTTP {resp.status}")
        return await cls.connect(target, extract_token(resp.text), timeout)

    @classmethod
    async def connect(cls, target: Target, token: str, timeout: float = 30.0) -> BokehSession:
        ws = await WSClient.connect(
            target.host, target.port, target.app.rstrip("/") + "/ws", ["bokeh", token], timeout=timeout
        )
        sess = cls(ws, token, timeout)
        try:
            ack = await sess.next_message()
            if ack.msgtype != "ACK":
                raise ConnectionError(f"first message was {ack.msgtype}, not ACK")
        except BaseException:
            await ws.close()
            raise
        return sess

    async def next_message(self) -> BokehMessage:
        async with asyncio.timeout(self.timeout):
            while True:
                msg = self._asm.feed(await self.ws.recv())
                if msg is not None:
                    return msg

    def send(self, msgtype: str, content: Any = None) -> str:
        msgid, frames = encode_message(msgtype, content)
        self.ws.send_frames(frames)
        return msgid

    async def request(self, msgtype: str, content: Any = None) -> tuple[BokehMessage, list[BokehMessage]]:
        """Send a request; return (reply, other messages received before it)."""
        msgid = self.send(msgtype, content)
        others: list[BokehMessage] = []
        while True:
            msg = await self.next_message()
            if msg.reqid == msgid:
                if msg.msgtype == "ERROR":
                    raise RuntimeError(f"server ERROR for {msgtype}: {msg.content.get('text')}")
                return msg, others
            others.append(msg)

    async def pull_doc(self, parse: bool = True) -> BokehMessage:
        reply, _ = await self.request("PULL-DOC-REQ")
        if reply.msgtype != "PULL-DOC-REPLY":
            raise ConnectionError(f"PULL-DOC-REQ answered by {reply.msgtype}")
        if parse:
            self.doc = reply.content["doc"]
        return reply

    def model_ids(self, type_name: str) -> dict[str, str]:
        return find_model_ids(self.doc, type_name)

    async def set_value(self, model_id: str, attr: str, value: Any) -> list[BokehMessage]:
        """PATCH-DOC one ModelChanged; return the server PATCH-DOCs that arrived before the OK."""
        event = {"kind": "ModelChanged", "model": {"id": model_id}, "attr": attr, "new": value}
        _, others = await self.request("PATCH-DOC", json.dumps({"events": [event]}))
        return others

    async def close(self) -> None:
        await self.ws.close()


async def open_session_and_pull(
    target: Target, http: HTTPConnection | None = None, parse: bool = False, timeout: float = 30.0
) -> BokehSession:
    """What a page view does on the wire: GET page, websocket, ACK, PULL-DOC."""
    sess = await BokehSession.start(target, http, timeout)
    try:
        await sess.pull_doc(parse=parse)
    except BaseException:
        await sess.close()
        raise
    return sess

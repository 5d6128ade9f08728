"""Sans-I/O Bokeh protocol messages (spec: shared/spec/protocol.md §3-§5).

A Bokeh message is header, metadata and content text frames, then `num_buffers` pairs of
(buffer-header text frame, binary payload). `MessageAssembler` turns WebSocket messages into
`BokehMessage`s; `encode_message` does the reverse. Content JSON is parsed only on demand, because
the load generator mostly needs just the header (msgtype, reqid) and parsing costs it CPU.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from .frames import OP_BINARY, OP_TEXT, WSMessage

_ids = itertools.count(1)


def new_msgid() -> str:
    return f"lg{next(_ids)}"


class ProtocolError(Exception):
    """The peer broke the Bokeh message framing."""


@dataclass(slots=True)
class BokehMessage:
    header: dict[str, Any]
    metadata: str
    content_text: str
    buffers: dict[str, bytes] = field(default_factory=dict)
    nbytes: int = 0

    @property
    def msgtype(self) -> str:
        return str(self.header.get("msgtype"))

    @property
    def reqid(self) -> str | None:
        return self.header.get("reqid")

    @property
    def content(self) -> Any:
        return json.loads(self.content_text)


class MessageAssembler:
    """Feed complete text/binary WebSocket messages; returns a BokehMessage when one completes."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._header: dict[str, Any] | None = None
        self._buffers: dict[str, bytes] = {}
        self._want: int = 0
        self._pending_id: str | None = None
        self._nbytes = 0

    def feed(self, msg: WSMessage) -> BokehMessage | None:
        self._nbytes += len(msg.payload)
        if self._pending_id is not None:
            if msg.opcode != OP_BINARY:
                raise ProtocolError("expected binary buffer payload")
            self._buffers[self._pending_id] = msg.payload
            self._pending_id = None
            return self._maybe_done()
        if msg.opcode != OP_TEXT:
            raise ProtocolError("expected text fragment, got binary")
        if self._header is None:
            self._parts.append(msg.text)
            if len(self._parts) < 3:
                return None
            self._header = json.loads(self._parts[0])
            if not isinstance(self._header, dict) or "msgtype" not in self._header:
                raise ProtocolError(f"bad header {self._parts[0][:200]!r}")
            self._want = int(self._header.get("num_buffers") or 0)
            return self._maybe_done()
        self._pending_id = str(json.loads(msg.text)["id"])
        return None

    def _maybe_done(self) -> BokehMessage | None:
        assert self._header is not None
        if len(self._buffers) < self._want:
            return None
        out = BokehMessage(self._header, self._parts[1], self._parts[2], self._buffers, self._nbytes)
        self._parts, self._header, self._buffers, self._want, self._nbytes = [], None, {}, 0, 0
        return out


def encode_message(
    msgtype: str,
    content: Any = None,
    *,
    msgid: str | None = None,
    reqid: str | None = None,
    buffers: list[tuple[str, bytes]] | None = None,
) -> tuple[str, list[tuple[int, bytes]]]:
    """Return (msgid, [(opcode, payload), ...]) for one Bokeh message."""
    msgid = msgid or new_msgid()
    header: dict[str, Any] = {"msgid": msgid, "msgtype": msgtype}
    if reqid is not None:
        header["reqid"] = reqid
    if buffers:
        header["num_buffers"] = len(buffers)
    text = content if isinstance(content, str) else json.dumps(content or {}, separators=(",", ":"))
    parts = [
        (OP_TEXT, json.dumps(header, separators=(",", ":")).encode()),
        (OP_TEXT, b"{}"),
        (OP_TEXT, text.encode()),
    ]
    for bid, data in buffers or ():
        parts.append((OP_TEXT, json.dumps({"id": bid}).encode()))
        parts.append((OP_BINARY, data))
    return msgid, parts


def find_model_ids(doc: Any, type_name: str) -> dict[str, str]:
    """Map `name` attribute -> id for every object rep of `type_name` inside a pulled doc JSON."""
    found: dict[str, str] = {}
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("type") == "object" and node.get("name") == type_name:
                attrs = node.get("attributes") or {}
                found[str(attrs.get("name", node["id"]))] = node["id"]
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found

"""Cross-checks against bokeh's own protocol code: its messages assemble here, and ours assemble there."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from bokeh.document import Document
from bokeh.models import ColumnDataSource, Div  # type: ignore[attr-defined]
from bokeh.protocol import Protocol
from bokeh.protocol.receiver import Receiver

from aperture.protocol import (
    CLIENT_REQUESTS,
    Buffer,
    Message,
    MessageAssembler,
    encode,
    error,
    ok,
    patch_doc,
    pull_doc_reply,
    server_info_reply,
)


def bokeh_frames(msg: Any) -> list[str | bytes]:
    """The frames bokeh's Message.send would write, in order."""
    frames: list[str | bytes] = [msg.header_json, msg.metadata_json, msg.content_json]
    for buffer in msg.buffers:
        frames.append(json.dumps(buffer.ref))
        frames.append(buffer.to_bytes())
    return frames


def assemble_one(frames: list[str | bytes], accept: frozenset[str] | None = None) -> Message:
    assembler = MessageAssembler(accept)
    results = [assembler.feed(frame) for frame in frames]
    assert results[:-1] == [None] * (len(frames) - 1)
    msg = results[-1]
    assert msg is not None
    return msg


def document_with_array() -> tuple[Document, ColumnDataSource]:
    doc = Document()
    source = ColumnDataSource(data={"x": np.array([0.0, 1.0, 2.0]), "y": np.arange(3, dtype=np.int32)})
    doc.add_root(source)
    doc.add_root(Div(text="héllo"))
    return doc, source


def test_bokeh_push_doc_with_buffers_assembles() -> None:
    doc, _ = document_with_array()
    bk = Protocol().create("PUSH-DOC", doc)
    assert len(bk.buffers) >= 1
    msg = assemble_one(bokeh_frames(bk), CLIENT_REQUESTS)
    assert msg.msgtype == "PUSH-DOC"
    assert msg.msgid == bk.header["msgid"]
    assert msg.content == json.loads(bk.content_json)
    assert {b.id: bytes(b.data) for b in msg.buffers} == {b.id: b.to_bytes() for b in bk.buffers}


def test_bokeh_patch_doc_with_buffers_assembles() -> None:
    doc, source = document_with_array()
    events: list[Any] = []
    doc.on_change(events.append)
    source.data = {"x": np.array([4.0, 4.0, 4.0]), "y": np.arange(3, dtype=np.int32)}
    bk = Protocol().create("PATCH-DOC", events)
    assert len(bk.buffers) >= 1
    msg = assemble_one(bokeh_frames(bk), CLIENT_REQUESTS)
    assert msg.msgtype == "PATCH-DOC"
    assert msg.content == json.loads(bk.content_json)
    assert msg.content["events"][0]["kind"] == "ColumnDataChanged"
    assert {b.id: bytes(b.data) for b in msg.buffers} == {b.id: b.to_bytes() for b in bk.buffers}


@pytest.mark.parametrize("msgtype", ["PULL-DOC-REQ", "SERVER-INFO-REQ"])
def test_bokeh_simple_requests_assemble(msgtype: str) -> None:
    bk = Protocol().create(msgtype)  # type: ignore[call-overload]
    msg = assemble_one(bokeh_frames(bk), CLIENT_REQUESTS)
    assert (msg.msgtype, msg.msgid, msg.content) == (msgtype, bk.header["msgid"], {})


async def bokeh_receive(frames: list[str | bytes]) -> Any:
    receiver = Receiver(Protocol())
    result = None
    for frame in frames:
        assert result is None
        result = await receiver.consume(frame)
    return result


def server_messages() -> list[Message]:
    ndarray = {
        "type": "ndarray",
        "array": {"type": "bytes", "data": {"id": "p2"}},
        "shape": [2],
        "dtype": "uint8",
    }
    return [
        ok("a1", "r1"),
        error("a2", "r2", "ValueError('x')"),
        server_info_reply("a3", "r3", "3.9.2", "3.9.2"),
        pull_doc_reply("a4", "r4", {"version": "3.9.2", "title": "t", "roots": []}),
        patch_doc(
            "a5", {"events": [{"kind": "TitleChanged", "title": "ü"}, ndarray]}, [Buffer("p2", b"\x01\x02")]
        ),
    ]


@pytest.mark.parametrize("sent", server_messages(), ids=lambda m: m.msgtype)
async def test_our_frames_are_read_by_bokeh(sent: Message) -> None:
    bk = await bokeh_receive(encode(sent))
    assert bk is not None
    assert bk.msgtype == sent.msgtype
    assert bk.header["msgid"] == sent.msgid
    assert bk.header.get("reqid") == sent.reqid
    assert bk.content == sent.content
    assert {b.id: b.to_bytes() for b in bk.buffers} == {b.id: bytes(b.data) for b in sent.buffers}

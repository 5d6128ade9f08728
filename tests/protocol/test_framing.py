"""Tests of aperture.protocol.framing: exact encoder output, round trips and captured exchanges."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import pytest

from aperture.protocol import (
    CLIENT_REQUESTS,
    KNOWN_TYPES,
    Buffer,
    Message,
    MessageAssembler,
    RawJSON,
    ack,
    encode,
    error,
    ok,
    patch_doc,
    pull_doc_reply,
    server_info_reply,
)


def assemble(frames: Iterable[str | bytes], accept: frozenset[str] | None = None) -> list[Message]:
    """Feed every frame; return the messages that came out, checking None came out otherwise."""
    assembler = MessageAssembler(accept)
    out: list[Message] = []
    for frame in frames:
        msg = assembler.feed(frame)
        if msg is not None:
            out.append(msg)
    return out


def buffer_map(buffers: Sequence[Buffer]) -> dict[str, bytes]:
    return {b.id: bytes(b.data) for b in buffers}


# -- exact encoder output -------------------------------------------------------------------------


def test_encode_ack_exactly() -> None:
    assert encode(ack("a1")) == ['{"msgid": "a1", "msgtype": "ACK"}', "{}", "{}"]


def test_encode_ok_exactly() -> None:
    assert encode(ok("a2", "8985631E828E46238CA47280393C8BD6")) == [
        '{"msgid": "a2", "msgtype": "OK", "reqid": "8985631E828E46238CA47280393C8BD6"}',
        "{}",
        "{}",
    ]


def test_encode_patch_doc_always_counts_buffers() -> None:
    content = {"events": [{"kind": "ModelChanged", "model": {"id": "p1116"}, "attr": "text", "new": "v=4"}]}
    assert encode(patch_doc("a3", content)) == [
        '{"msgid": "a3", "msgtype": "PATCH-DOC", "num_buffers": 0}',
        "{}",
        '{"events":[{"kind":"ModelChanged","model":{"id":"p1116"},"attr":"text","new":"v=4"}]}',
    ]


def test_encode_pull_doc_reply_header_key_order() -> None:
    frames = encode(pull_doc_reply("a4", "R", {"roots": []}, [Buffer("p7", b"xyz")]))
    assert frames == [
        '{"msgid": "a4", "msgtype": "PULL-DOC-REPLY", "reqid": "R", "num_buffers": 1}',
        "{}",
        '{"doc":{"roots":[]}}',
        '{"id": "p7"}',
        b"xyz",
    ]


def test_encode_push_doc_counts_zero_buffers() -> None:
    frames = encode(Message("PUSH-DOC", "p1", {"doc": {}}))
    assert frames[0] == '{"msgid": "p1", "msgtype": "PUSH-DOC", "num_buffers": 0}'


@pytest.mark.parametrize("msgtype", ["ACK", "OK", "ERROR", "SERVER-INFO-REPLY", "SERVER-INFO-REQ"])
def test_encode_other_types_count_buffers_only_when_present(msgtype: str) -> None:
    assert "num_buffers" not in json.loads(encode(Message(msgtype, "m", {}))[0])
    header = json.loads(encode(Message(msgtype, "m", {}, buffers=[Buffer("0", b"")]))[0])
    assert header["num_buffers"] == 1


def test_encode_error_and_server_info() -> None:
    assert encode(error("a5", "r", "KeyError('x')")) == [
        '{"msgid": "a5", "msgtype": "ERROR", "reqid": "r"}',
        "{}",
        '{"text":"KeyError(\'x\')","traceback":null}',
    ]
    assert encode(server_info_reply("a6", "r", "3.9.2", "3.9.2"))[2] == (
        '{"version_info":{"bokeh":"3.9.2","server":"3.9.2"}}'
    )


def test_encode_raw_json_verbatim() -> None:
    raw = RawJSON('{"events": [ ] }')
    frames = encode(patch_doc("a7", raw))
    assert frames[2] is raw
    doc = RawJSON('{"title":"t"}')
    assert encode(pull_doc_reply("a8", "r", doc))[2] == '{"doc":{"title":"t"}}'


def test_encode_content_keeps_non_ascii() -> None:
    assert encode(patch_doc("a9", {"events": [{"title": "café ☃"}]}))[2] == '{"events":[{"title":"café ☃"}]}'


def test_encode_rejects_non_finite_numbers() -> None:
    with pytest.raises(ValueError):
        encode(patch_doc("a10", {"events": [float("nan")]}))
    with pytest.raises(ValueError):
        encode(Message("PATCH-DOC", "a11", {}, metadata={"x": float("inf")}))


def test_encode_metadata() -> None:
    msg = Message("PATCH-DOC", "m", {"events": []}, metadata={"a": 1})
    assert encode(msg)[1] == '{"a": 1}'


def test_encode_buffers_without_needless_copies() -> None:
    data = b"\x01\x02\x03"
    view = memoryview(b"\x00\x00\x00\x00\x00\x00\xf0?")
    frames = encode(patch_doc("m", {"events": []}, [Buffer("p1", data), Buffer("p2", view)]))
    assert frames[3:] == ['{"id": "p1"}', data, '{"id": "p2"}', b"\x00\x00\x00\x00\x00\x00\xf0?"]
    assert frames[4] is data
    assert type(frames[6]) is bytes


# -- round trips ----------------------------------------------------------------------------------

ALL_MESSAGES = [
    ack("a1"),
    ok("a2", "r1"),
    error("a3", "r2", "boom"),
    Message("PULL-DOC-REQ", "c1", {}),
    pull_doc_reply("a4", "c1", {"version": "3.9.2", "title": "t", "roots": []}),
    Message("PUSH-DOC", "c2", {"doc": {"title": "x", "roots": []}}),
    patch_doc("a5", {"events": [{"kind": "TitleChanged", "title": "é"}]}),
    Message("SERVER-INFO-REQ", "c3", {}),
    server_info_reply("a6", "c3", "3.9.2", "0.1"),
]


def make_buffers(n: int) -> list[Buffer]:
    return [Buffer(f"p{i}", bytes([i]) * (i + 1)) for i in range(n)]


@pytest.mark.parametrize("n_buffers", [0, 1, 3])
@pytest.mark.parametrize("msg", ALL_MESSAGES, ids=lambda m: m.msgtype)
def test_round_trip(msg: Message, n_buffers: int) -> None:
    sent = Message(msg.msgtype, msg.msgid, msg.content, msg.reqid, make_buffers(n_buffers))
    [got] = assemble(encode(sent))
    assert got.msgtype == sent.msgtype
    assert got.msgid == sent.msgid
    assert got.reqid == sent.reqid
    assert got.content == sent.content
    assert got.metadata == {}
    assert buffer_map(got.buffers) == buffer_map(sent.buffers)
    assert [b.id for b in got.buffers] == [b.id for b in sent.buffers]


def test_round_trip_covers_every_type() -> None:
    assert {m.msgtype for m in ALL_MESSAGES} == KNOWN_TYPES


def test_round_trip_raw_json() -> None:
    sent = pull_doc_reply("a1", "r", RawJSON('{"roots":[1,2]}'), make_buffers(1))
    [got] = assemble(encode(sent))
    assert got.content == {"doc": {"roots": [1, 2]}}


def test_several_messages_in_a_row() -> None:
    frames = [f for m in ALL_MESSAGES for f in encode(m)]
    got = assemble(frames)
    assert [(m.msgtype, m.msgid, m.content) for m in got] == [
        (m.msgtype, m.msgid, m.content) for m in ALL_MESSAGES
    ]


def test_feed_returns_none_until_last_frame() -> None:
    frames = encode(patch_doc("m", {"events": []}, make_buffers(2)))
    assembler = MessageAssembler(CLIENT_REQUESTS)
    results = [assembler.feed(f) for f in frames]
    assert results[:-1] == [None] * (len(frames) - 1)
    assert isinstance(results[-1], Message)


def test_buffer_ids_out_of_order() -> None:
    content = {"events": [{"a": {"id": "0"}}, {"b": {"id": "1"}}, {"c": {"id": "2"}}]}
    frames: list[str | bytes] = [
        '{"msgid":"X","msgtype":"PATCH-DOC","num_buffers":3}',
        "{}",
        json.dumps(content),
        '{"id":"2"}',
        b"two",
        '{"id":"0"}',
        b"zero",
        '{"id":"1"}',
        b"one",
    ]
    [got] = assemble(frames, CLIENT_REQUESTS)
    assert buffer_map(got.buffers) == {"0": b"zero", "1": b"one", "2": b"two"}


def test_accepts_any_json_formatting_extra_keys_and_metadata() -> None:
    frames: list[str | bytes] = [
        '\n{ "num_buffers" : 1,\n  "extra": [1, 2],  "reqid": "ignored", "msgtype":"SERVER-INFO-REQ","msgid":"z" }\t',
        '{"whatever": {"nested": [null, true, 1.5]}}',
        "  { }  ",
        '{ "id" :"b"}',
        b"",
    ]
    [got] = assemble(frames, CLIENT_REQUESTS)
    assert got.msgtype == "SERVER-INFO-REQ"
    assert got.reqid == "ignored"
    assert got.metadata == {"whatever": {"nested": [None, True, 1.5]}}
    assert buffer_map(got.buffers) == {"b": b""}


def test_without_accept_every_known_type_is_taken() -> None:
    got = assemble([f for m in ALL_MESSAGES for f in encode(m)], accept=None)
    assert len(got) == len(ALL_MESSAGES)


def test_payload_is_not_copied() -> None:
    payload = b"\x00" * 64
    frames: list[str | bytes] = ['{"msgid":"X","msgtype":"PATCH-DOC","num_buffers":1}', "{}", "{}"]
    [got] = assemble([*frames, '{"id":"0"}', payload])
    assert got.buffers[0].data is payload


# -- captured exchanges (protocol.md §10) ---------------------------------------------------------


def test_captured_bokehjs_session() -> None:
    """§10.1: the frames real BokehJS sent, byte for byte."""
    frames = [
        '{"msgid":"8985631E828E46238CA47280393C8BD6","msgtype":"PULL-DOC-REQ"}',
        "{}",
        "{}",
        '{"msgid":"B1AD6CD7ED844A0FBB69A49E4B1D5FB0","msgtype":"PATCH-DOC"}',
        "{}",
        '{"events":[{"kind":"MessageSent","msg_type":"bokeh_event","msg_data":{"type":"event",'
        '"name":"document_ready","values":{"type":"map"}}}]}',
        '{"msgid":"1D3932CD9CD64C31A8565595595BA983","msgtype":"PATCH-DOC"}',
        "{}",
        '{"events":[{"kind":"ModelChanged","model":{"id":"p1115"},"attr":"value","new":4}]}',
    ]
    pull, ready, change = assemble(frames, CLIENT_REQUESTS)
    assert (pull.msgtype, pull.msgid, pull.content, pull.reqid) == (
        "PULL-DOC-REQ",
        "8985631E828E46238CA47280393C8BD6",
        {},
        None,
    )
    assert ready.content["events"][0]["msg_data"]["name"] == "document_ready"
    assert change.content == {
        "events": [{"kind": "ModelChanged", "model": {"id": "p1115"}, "attr": "value", "new": 4}]
    }
    assert [pull.buffers, ready.buffers, change.buffers] == [[], [], []]


def test_captured_server_replies_are_reproduced() -> None:
    """§10.1: what the reference server sent, reproduced frame for frame by the encoder."""
    assert encode(ack("p1117")) == ['{"msgid": "p1117", "msgtype": "ACK"}', "{}", "{}"]
    assert encode(ok("p1120", "B1AD6CD7ED844A0FBB69A49E4B1D5FB0")) == [
        '{"msgid": "p1120", "msgtype": "OK", "reqid": "B1AD6CD7ED844A0FBB69A49E4B1D5FB0"}',
        "{}",
        "{}",
    ]
    text_change = {
        "events": [{"kind": "ModelChanged", "model": {"id": "p1116"}, "attr": "text", "new": "value=4"}]
    }
    assert encode(patch_doc("p1121", text_change)) == [
        '{"msgid": "p1121", "msgtype": "PATCH-DOC", "num_buffers": 0}',
        "{}",
        '{"events":[{"kind":"ModelChanged","model":{"id":"p1116"},"attr":"text","new":"value=4"}]}',
    ]
    ndarray = {
        "type": "ndarray",
        "array": {"type": "bytes", "data": {"id": "p1123"}},
        "shape": [3],
        "dtype": "float64",
        "order": "little",
    }
    data_change = {
        "events": [
            {
                "kind": "ColumnDataChanged",
                "model": {"id": "p1112"},
                "attr": "data",
                "data": {"type": "map", "entries": [["x", ndarray]]},
                "cols": None,
            }
        ]
    }
    fours = bytes.fromhex("0000000000001040" * 3)
    assert encode(patch_doc("p1122", data_change, [Buffer("p1123", fours)])) == [
        '{"msgid": "p1122", "msgtype": "PATCH-DOC", "num_buffers": 1}',
        "{}",
        '{"events":[{"kind":"ColumnDataChanged","model":{"id":"p1112"},"attr":"data","data":{"type":"map",'
        '"entries":[["x",{"type":"ndarray","array":{"type":"bytes","data":{"id":"p1123"}},"shape":[3],'
        '"dtype":"float64","order":"little"}]]},"cols":null}]}',
        '{"id": "p1123"}',
        fours,
    ]


def test_captured_server_pull_doc_reply_is_read() -> None:
    """§10.1 from the client side: the server's PULL-DOC-REPLY with one buffer."""
    frames: list[str | bytes] = [
        '{"msgid": "p1118", "msgtype": "PULL-DOC-REPLY", "reqid": "8985631E828E46238CA47280393C8BD6", "num_buffers": 1}',
        "{}",
        '{"doc":{"version":"3.9.2","title":"spec demo","roots":[{"type":"object","name":"ColumnDataSource",'
        '"id":"p1112","attributes":{"data":{"type":"map","entries":[["x",{"type":"ndarray","array":{"type":'
        '"bytes","data":{"id":"p1119"}},"shape":[3],"dtype":"float64","order":"little"}]]}}}]}}',
        '{"id": "p1119"}',
        bytes.fromhex("0000000000000000000000000000f03f0000000000000040"),
    ]
    [reply] = assemble(frames)
    assert reply.reqid == "8985631E828E46238CA47280393C8BD6"
    assert reply.content["doc"]["title"] == "spec demo"
    assert buffer_map(reply.buffers) == {"p1119": frames[4]}


def test_captured_bokeh_client_requests() -> None:
    """§10.5 and §10.2: bokeh.client and Tornado-client frames, spaced JSON and all."""
    frames = [
        '{"msgid": "p1008", "msgtype": "PULL-DOC-REQ"}',
        "{}",
        "{}",
        '{"msgid": "p1014", "msgtype": "PATCH-DOC", "num_buffers": 0}',
        "{}",
        '{"events":[{"kind":"ModelChanged","model":{"id":"p1072"},"attr":"value","new":7}]}',
        '{"msgid": "p1015", "msgtype": "SERVER-INFO-REQ"}',
        "{}",
        "{}",
        '{"msgid": "p1009", "msgtype": "PUSH-DOC", "num_buffers": 0}',
        "{}",
        '{"doc":{"version":"3.9.2","title":"Bokeh Application","config":{"type":"object",'
        '"name":"DocumentConfig","id":"p1001"},"roots":[]}}',
        '{"msgid": "cdb824b3-0e3f-4c43-a7a5-1e7c7b3d0c11", "msgtype": "PATCH-DOC"}',
        "{}",
        '{"events": [{"kind": "ModelChanged", "model": {"id": "p1032"}, "attr": "value", "new": 5}]}',
    ]
    got = assemble(frames, CLIENT_REQUESTS)
    assert [(m.msgtype, m.msgid) for m in got] == [
        ("PULL-DOC-REQ", "p1008"),
        ("PATCH-DOC", "p1014"),
        ("SERVER-INFO-REQ", "p1015"),
        ("PUSH-DOC", "p1009"),
        ("PATCH-DOC", "cdb824b3-0e3f-4c43-a7a5-1e7c7b3d0c11"),
    ]
    assert got[1].content["events"][0]["new"] == 7
    assert got[3].content["doc"]["title"] == "Bokeh Application"
    assert got[4].content["events"][0]["new"] == 5

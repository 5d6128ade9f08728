"""Bokeh message framing and page parsing of the load generator."""

import json

from bokeh.util.token import generate_jwt_token, get_session_id

from bench.loadgen.frames import OP_BINARY, OP_TEXT, FrameDecoder, WSMessage, encode_frame
from bench.loadgen.http import extract_script_urls, extract_token, parse_head
from bench.loadgen.messages import MessageAssembler, encode_message, find_model_ids


def _reassemble(frames):
    stream = b"".join(encode_frame(op, p) for op, p in frames)
    asm = MessageAssembler()
    return [m for w in FrameDecoder().feed(stream) if (m := asm.feed(w)) is not None]


def test_encode_then_assemble_with_buffers():
    msgid, frames = encode_message("PATCH-DOC", {"events": []}, buffers=[("0", b"\x00" * 16), ("1", b"ab")])
    assert [op for op, _ in frames] == [OP_TEXT] * 3 + [OP_TEXT, OP_BINARY] * 2
    (msg,) = _reassemble(frames)
    assert msg.header == {"msgid": msgid, "msgtype": "PATCH-DOC", "num_buffers": 2}
    assert msg.content == {"events": []} and msg.metadata == "{}"
    assert msg.buffers == {"0": b"\x00" * 16, "1": b"ab"}


def test_server_style_messages_in_sequence():
    """num_buffers absent (ACK) or 0 (PATCH-DOC), reqid on replies, Python-style JSON spacing."""
    asm = MessageAssembler()
    texts = [
        '{"msgid": "p1", "msgtype": "ACK"}', "{}", "{}",
        '{"msgid": "p2", "msgtype": "PULL-DOC-REPLY", "reqid": "lg7", "num_buffers": 1}', "{}", '{"doc":{}}',
        '{"id": "p3"}',
    ]  # fmt: skip
    out = [asm.feed(WSMessage(OP_TEXT, t.encode())) for t in texts]
    assert out[:2] == [None, None] and out[2].msgtype == "ACK" and out[2].reqid is None
    assert all(m is None for m in out[3:])
    reply = asm.feed(WSMessage(OP_BINARY, b"\x01\x02"))
    assert reply.msgtype == "PULL-DOC-REPLY" and reply.reqid == "lg7" and reply.buffers == {"p3": b"\x01\x02"}


def test_find_model_ids():
    doc = {
        "roots": [
            {"type": "object", "name": "Row", "id": "p1", "attributes": {"children": [
                {"type": "object", "name": "Slider", "id": "p2", "attributes": {"name": "amplitude"}},
                {"type": "object", "name": "Slider", "id": "p3", "attributes": {}},
            ]}},
        ]
    }  # fmt: skip
    assert find_model_ids(doc, "Slider") == {"amplitude": "p2", "p3": "p3"}


PAGE = """<!DOCTYPE html><html><head>
<script type="text/javascript" src="static/js/bokeh.min.js?v=abc"></script>
<script type="text/javascript" src="static/js/bokeh-widgets.min.js?v=def"></script>
</head><body><script type="text/javascript">
  (function() { const fn = function() { Bokeh.safely(function() { (function(root) {
    function embed_document(root) {
      const docs_json = '{}';
      const render_items = [{"token":"TOKEN","roots":{"p1050":"6b1c"},"root_ids":["p1050"]}];
      root.Bokeh.embed.embed_items(docs_json, render_items);
"""


def test_extract_token_from_page():
    token = generate_jwt_token("abc", signed=True, secret_key="k" * 32, extra_payload={"headers": {"X": "é"}})
    assert extract_token(PAGE.replace("TOKEN", token)) == token
    assert get_session_id(extract_token(PAGE.replace("TOKEN", token))) == "abc"
    spaced = f"render_items = [{json.dumps({'token': token})}]"  # Python-style '"token": "..."'
    assert extract_token(spaced) == token


def test_extract_script_urls_and_parse_head():
    assert extract_script_urls(PAGE) == [
        "static/js/bokeh.min.js?v=abc",
        "static/js/bokeh-widgets.min.js?v=def",
    ]
    status, headers = parse_head(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Protocol: bokeh"
    )
    assert (
        status == 101 and headers["sec-websocket-protocol"] == "bokeh" and headers["upgrade"] == "websocket"
    )

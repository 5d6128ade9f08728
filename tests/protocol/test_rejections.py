"""Tests of MessageAssembler's refusals: every malformed input, its reason and its close code."""

from __future__ import annotations

import json

import pytest

from aperture.errors import CLOSE_INVALID_DATA, CLOSE_PROTOCOL_ERROR, ProtocolViolation
from aperture.protocol import CLIENT_REQUESTS, MessageAssembler

OK_HEADER = '{"msgid": "m1", "msgtype": "PATCH-DOC", "num_buffers": 2}'
PREFIX: list[str | bytes] = [OK_HEADER, "{}", '{"events": []}']


def frames_of(*frames: str | bytes) -> list[str | bytes]:
    return list(frames)


# (frames fed, expected reason, expected close code)
CASES: list[tuple[list[str | bytes], str, int]] = [
    ([b'{"msgid":"m","msgtype":"ACK"}'], "expected a text frame for the message header, got binary", 1002),
    (["{nope"], "message header is not valid JSON", 1007),
    ([""], "message header is not valid JSON", 1007),
    (['{"msgid": "m", "msgtype": "OK"} trailing'], "message header is not valid JSON", 1007),
    (['{"msgid": NaN, "msgtype": "OK"}'], "message header is not valid JSON", 1007),
    (['["PATCH-DOC"]'], "message header must be a JSON object", 1002),
    (["null"], "message header must be a JSON object", 1002),
    (['{"msgid": "m"}'], "message header has no 'msgtype'", 1002),
    (['{"msgtype": "PATCH-DOC"}'], "message header has no 'msgid'", 1002),
    (['{"msgid": "m", "msgtype": 7}'], "'msgtype' in the message header must be a string", 1002),
    (['{"msgid": 7, "msgtype": "PATCH-DOC"}'], "'msgid' in the message header must be a string", 1002),
    (['{"msgid": "m", "msgtype": "FOO"}'], "unknown message type 'FOO'", 1002),
    (['{"msgid": "m", "msgtype": "ACK"}'], "message type 'ACK' is not accepted by the server", 1002),
    (
        ['{"msgid": "m", "msgtype": "PULL-DOC-REPLY"}'],
        "message type 'PULL-DOC-REPLY' is not accepted by the server",
        1002,
    ),
    (
        ['{"msgid": "m", "msgtype": "OK", "reqid": 5}'],
        "message type 'OK' is not accepted by the server",
        1002,
    ),
    (
        ['{"msgid": "m", "msgtype": "PATCH-DOC", "reqid": 5}'],
        "'reqid' in the message header must be a string",
        1002,
    ),
    *[
        (
            frames_of('{"msgid": "m", "msgtype": "PATCH-DOC", "num_buffers": ' + bad + "}"),
            "'num_buffers' must be a non-negative integer",
            1002,
        )
        for bad in ["-1", '"1"', "1.5", "1.0", "true", "null", "[]"]
    ],
    (
        ['{"msgid": "m", "msgtype": "PATCH-DOC", "num_buffers": 1001}'],
        "'num_buffers' must be at most 1000, got 1001",
        1002,
    ),
    ([OK_HEADER, b"{}"], "expected a text frame for the message metadata, got binary", 1002),
    ([OK_HEADER, "{"], "message metadata is not valid JSON", 1007),
    ([OK_HEADER, "{}", b"{}"], "expected a text frame for the message content, got binary", 1002),
    ([OK_HEADER, "{}", "{'events': []}"], "message content is not valid JSON", 1007),
    ([OK_HEADER, "{}", '{"x": Infinity}'], "message content is not valid JSON", 1007),
    ([OK_HEADER, "{}", '{"x": -Infinity}'], "message content is not valid JSON", 1007),
    ([OK_HEADER, "{}", "[]"], "PATCH-DOC content must be a JSON object", 1002),
    ([OK_HEADER, "{}", '"text"'], "PATCH-DOC content must be a JSON object", 1002),
    ([OK_HEADER, "{}", "[" * 100_000 + "]" * 100_000], "message content is nested too deeply", 1007),
    ([*PREFIX, b'{"id": "0"}'], "expected a text frame for the buffer header, got binary", 1002),
    ([*PREFIX, '{"id": '], "buffer header is not valid JSON", 1007),
    *[
        ([*PREFIX, bad], 'buffer header must be exactly {"id": <string>}', 1002)
        for bad in ['{"id": 0}', '{"id": "0", "x": 1}', "{}", '["0"]', '"0"', '{"ID": "0"}', '{"id": null}']
    ],
    ([*PREFIX, '{"id": "0"}', '{"id": "0"}'], "expected a binary frame for buffer payload, got text", 1002),
    ([*PREFIX, '{"id": "0"}', b"a", '{"id": "0"}'], "buffer id '0' appears twice in one message", 1002),
]


@pytest.mark.parametrize(("frames", "reason", "code"), CASES)
def test_rejection(frames: list[str | bytes], reason: str, code: int) -> None:
    assembler = MessageAssembler(CLIENT_REQUESTS)
    for frame in frames[:-1]:
        assert assembler.feed(frame) is None
    with pytest.raises(ProtocolViolation) as info:
        assembler.feed(frames[-1])
    assert info.value.reason == reason
    assert str(info.value) == reason
    assert info.value.close_code == code
    assert code in (CLOSE_PROTOCOL_ERROR, CLOSE_INVALID_DATA)
    assert len(reason.encode("utf-8")) <= 123


@pytest.mark.parametrize(
    "msgtype",
    [
        "X" * 10_000,
        "☃" * 5_000,
        "\U0001f600" * 300,
        "line\nbreak\x00\x1b[31m",
        "\ud800lone surrogate",
        "a" * 29 + "€€€€€€€€",
    ],
)
@pytest.mark.parametrize("accept", [None, CLIENT_REQUESTS])
def test_echoed_peer_text_always_fits_a_close_frame(msgtype: str, accept: frozenset[str] | None) -> None:
    header = json.dumps({"msgid": "m", "msgtype": msgtype}, ensure_ascii=False)
    with pytest.raises(ProtocolViolation) as info:
        MessageAssembler(accept).feed(header)
    reason = info.value.reason
    assert reason.startswith("unknown message type ")
    assert len(reason.encode("utf-8")) <= 123
    assert "\n" not in reason and "\x00" not in reason and "\x1b" not in reason


def test_long_duplicate_buffer_id_fits_a_close_frame() -> None:
    assembler = MessageAssembler()
    buffer_header = json.dumps({"id": "é" * 500})
    for frame in [*PREFIX, buffer_header, b""]:
        assert assembler.feed(frame) is None
    with pytest.raises(ProtocolViolation) as info:
        assembler.feed(buffer_header)
    assert len(info.value.reason.encode("utf-8")) <= 123
    assert info.value.reason.startswith("buffer id 'éé")


def test_max_buffers_is_configurable() -> None:
    header = '{"msgid": "m", "msgtype": "PATCH-DOC", "num_buffers": 3}'
    with pytest.raises(ProtocolViolation, match="at most 2, got 3"):
        MessageAssembler(max_buffers=2).feed(header)
    assert MessageAssembler(max_buffers=3).feed(header) is None


def test_num_buffers_at_the_limit_is_fine() -> None:
    assert MessageAssembler().feed('{"msgid": "m", "msgtype": "PATCH-DOC", "num_buffers": 1000}') is None


def test_header_is_judged_before_the_rest_arrives() -> None:
    with pytest.raises(ProtocolViolation):
        MessageAssembler(CLIENT_REQUESTS).feed('{"msgid": "m", "msgtype": "FOO"}')


def test_assembler_stays_failed_after_a_violation() -> None:
    assembler = MessageAssembler(CLIENT_REQUESTS)
    with pytest.raises(ProtocolViolation):
        assembler.feed("garbage")
    with pytest.raises(ProtocolViolation) as info:
        assembler.feed('{"msgid": "m", "msgtype": "PULL-DOC-REQ"}')
    assert info.value.reason == "message header is not valid JSON"
    assert info.value.close_code == CLOSE_INVALID_DATA


def test_server_types_content_must_be_objects_too() -> None:
    assembler = MessageAssembler()
    assembler.feed('{"msgid": "m", "msgtype": "ACK"}')
    assembler.feed("{}")
    with pytest.raises(ProtocolViolation, match="ACK content must be a JSON object"):
        assembler.feed("[]")


def test_metadata_may_be_any_json() -> None:
    for metadata in ["[]", "null", "3", '"x"']:
        assembler = MessageAssembler(CLIENT_REQUESTS)
        assembler.feed('{"msgid": "m", "msgtype": "PULL-DOC-REQ"}')
        assembler.feed(metadata)
        msg = assembler.feed("{}")
        assert msg is not None

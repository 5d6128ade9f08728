"""RFC 6455 encoder/decoder of the load generator (bench/loadgen/frames.py)."""

import os
import struct

import pytest
from tornado.util import _websocket_mask  # the server-side implementation, as a reference

from bench.loadgen.frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_TEXT,
    FrameDecoder,
    FrameError,
    encode_close,
    encode_frame,
    xor_mask,
)


@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 125, 126, 127, 1000, 65535, 65536, 200_000])
def test_mask_matches_tornado(n):
    data, key = os.urandom(n), os.urandom(4)
    assert xor_mask(data, key) == _websocket_mask(key, data)
    assert xor_mask(xor_mask(data, key), key) == data


@pytest.mark.parametrize("n,hlen", [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)])
def test_length_encodings(n, hlen):
    payload = os.urandom(n)
    frame = encode_frame(OP_BINARY, payload, mask=False)
    assert len(frame) == hlen + n
    assert frame[0] == 0x80 | OP_BINARY
    assert frame[1] & 0x80 == 0
    masked = encode_frame(OP_BINARY, payload, key=b"\x01\x02\x03\x04")
    assert len(masked) == hlen + 4 + n and masked[1] & 0x80
    assert masked[hlen : hlen + 4] == b"\x01\x02\x03\x04"


@pytest.mark.parametrize("mask", [True, False])
def test_roundtrip_byte_by_byte(mask):
    msgs = [(OP_TEXT, b'{"msgid":"1"}'), (OP_BINARY, os.urandom(70_000)), (OP_TEXT, "é☃".encode())]
    stream = b"".join(encode_frame(op, p, mask=mask) for op, p in msgs)
    dec, out = FrameDecoder(), []
    for i in range(len(stream)):
        out += dec.feed(stream[i : i + 1])
    assert [(m.opcode, m.payload) for m in out] == msgs
    assert out[2].text == "é☃"


def test_fragmented_message_with_interleaved_ping():
    def frame(fin, op, payload):
        return bytes((fin << 7 | op, len(payload))) + payload

    stream = (
        frame(0, OP_TEXT, b"hel")
        + frame(1, OP_PING, b"x")
        + frame(0, OP_CONT, b"lo ")
        + frame(1, OP_CONT, b"you")
    )
    out = FrameDecoder().feed(stream)
    assert [(m.opcode, m.payload) for m in out] == [(OP_PING, b"x"), (OP_TEXT, b"hello you")]


def test_close_frame_code():
    (msg,) = FrameDecoder().feed(encode_close(10001, "protocol error", mask=False))
    assert msg.opcode == OP_CLOSE and msg.close_code == 10001 and msg.payload[2:] == b"protocol error"
    (empty,) = FrameDecoder().feed(b"\x88\x00")
    assert empty.close_code is None
    assert encode_close(None, mask=False) == b"\x88\x00"
    assert encode_close(1000, mask=False) == b"\x88\x02" + struct.pack("!H", 1000)


@pytest.mark.parametrize(
    "raw",
    [
        b"\xc1\x00",  # RSV1 without an extension
        b"\x80\x01x",  # continuation without a start
        b"\x89\x7e\x00\x80" + b"x" * 128,  # control frame > 125 bytes
        b"\x83\x00",  # reserved opcode
    ],
)
def test_rejects_bad_frames(raw):
    with pytest.raises(FrameError):
        FrameDecoder().feed(raw)

"""MessageAssembler's `max_bytes`: one pending message may not hold more than the limit in all."""

from __future__ import annotations

import json

import pytest

from aperture.errors import CLOSE_TOO_BIG, ProtocolViolation
from aperture.protocol import CLIENT_REQUESTS, MessageAssembler
from aperture.protocol.framing import MAX_REASON_BYTES

LIMIT = 10_000


def header(num_buffers: int, msgid: str = "m1") -> str:
    return json.dumps({"msgid": msgid, "msgtype": "PATCH-DOC", "num_buffers": num_buffers})


def patch_frames(payloads: list[bytes], msgid: str = "m1") -> list[str | bytes]:
    frames: list[str | bytes] = [header(len(payloads), msgid), "{}", '{"events": []}']
    for number, payload in enumerate(payloads):
        frames += [json.dumps({"id": f"b{number}"}), payload]
    return frames


def feed_all(assembler: MessageAssembler, frames: list[str | bytes]) -> list[object]:
    return [assembler.feed(frame) for frame in frames]


def size_of(frames: list[str | bytes]) -> int:
    return sum(len(f.encode("utf-8")) if isinstance(f, str) else len(f) for f in frames)


def test_many_buffers_each_under_the_limit_but_too_many_in_all_are_refused() -> None:
    assembler = MessageAssembler(CLIENT_REQUESTS, max_bytes=LIMIT)
    frames = patch_frames([b"\0" * 4000] * 5)
    with pytest.raises(ProtocolViolation) as caught:
        feed_all(assembler, frames)
    assert caught.value.close_code == CLOSE_TOO_BIG == 1009
    assert caught.value.reason.startswith("message too big")
    assert str(LIMIT) in caught.value.reason
    assert len(caught.value.reason.encode()) <= MAX_REASON_BYTES


def test_the_frame_that_crosses_the_limit_is_the_one_refused() -> None:
    frames = patch_frames([b"\0" * 4000] * 5)
    crossing = next(i for i in range(len(frames)) if size_of(frames[: i + 1]) > LIMIT)
    assembler = MessageAssembler(CLIENT_REQUESTS, max_bytes=LIMIT)
    for frame in frames[:crossing]:
        assert assembler.feed(frame) is None
    with pytest.raises(ProtocolViolation):
        assembler.feed(frames[crossing])


def test_a_message_of_exactly_the_limit_is_accepted() -> None:
    frames = patch_frames([b"\0" * 3000, b""])
    frames[-1] = b"\0" * (LIMIT - size_of(frames))
    assert size_of(frames) == LIMIT
    message = feed_all(MessageAssembler(CLIENT_REQUESTS, max_bytes=LIMIT), frames)[-1]
    assert message is not None


def test_one_byte_over_the_limit_is_refused() -> None:
    frames = patch_frames([b"\0" * 3000, b""])
    frames[-1] = b"\0" * (LIMIT - size_of(frames) + 1)
    with pytest.raises(ProtocolViolation) as caught:
        feed_all(MessageAssembler(CLIENT_REQUESTS, max_bytes=LIMIT), frames)
    assert caught.value.close_code == CLOSE_TOO_BIG


def test_the_count_starts_again_with_each_message() -> None:
    assembler = MessageAssembler(CLIENT_REQUESTS, max_bytes=LIMIT)
    for number in range(10):  # ten messages of ~8 kB each: 80 kB in all, never too much at once
        messages = feed_all(assembler, patch_frames([b"\0" * 4000, b"\0" * 4000], msgid=f"m{number}"))
        assert messages[-1] is not None


def test_text_counts_in_utf8_bytes_not_characters() -> None:
    content = json.dumps({"events": [], "pad": "é" * 3000}, ensure_ascii=False)  # 3,000 chars, 6,000 bytes
    frames: list[str | bytes] = [header(0), "{}", content]
    assert size_of(frames) - sum(len(f) for f in frames) == 3000  # each 'é' is two bytes
    small = MessageAssembler(CLIENT_REQUESTS, max_bytes=size_of(frames) - 1)
    with pytest.raises(ProtocolViolation) as caught:
        feed_all(small, frames)
    assert caught.value.close_code == CLOSE_TOO_BIG
    assert feed_all(MessageAssembler(CLIENT_REQUESTS, max_bytes=size_of(frames)), frames)[-1] is not None


def test_after_the_refusal_every_further_frame_is_refused() -> None:
    assembler = MessageAssembler(CLIENT_REQUESTS, max_bytes=LIMIT)
    with pytest.raises(ProtocolViolation):
        feed_all(assembler, patch_frames([b"\0" * 6000] * 2))
    with pytest.raises(ProtocolViolation) as caught:
        assembler.feed(header(0, "m2"))
    assert caught.value.close_code == CLOSE_TOO_BIG


def test_without_a_limit_large_messages_pass() -> None:
    frames = patch_frames([b"\0" * 50_000] * 4)
    assert feed_all(MessageAssembler(CLIENT_REQUESTS), frames)[-1] is not None

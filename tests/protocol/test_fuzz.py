"""Property tests: MessageAssembler survives any frame sequence, and encode/assemble round-trip."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from aperture.errors import ProtocolViolation
from aperture.protocol import CLIENT_REQUESTS, KNOWN_TYPES, Buffer, Message, MessageAssembler, encode

TYPES = sorted(KNOWN_TYPES)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def headers(draw: st.DrawFn) -> str:
    """Headers that are usually well formed, so fuzzing reaches the later states."""
    header: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        header["msgid"] = draw(st.text(max_size=6) | json_values)
    if draw(st.integers(0, 9)):
        header["msgtype"] = draw(st.sampled_from(TYPES) | st.text(max_size=300) | json_values)
    if draw(st.booleans()):
        header["num_buffers"] = draw(st.integers(-2, 4) | json_values)
    if draw(st.booleans()):
        header["reqid"] = draw(st.text(max_size=4) | st.none() | json_values)
    return json.dumps(header, ensure_ascii=draw(st.booleans()))


frames = st.one_of(
    headers(),
    st.sampled_from(["{}", "[]", '{"events": []}', '{"id": "0"}', '{"id": "1"}', '{"id": 1}', "", "nul"]),
    st.text(max_size=40),
    st.binary(max_size=16),
    json_values.map(json.dumps),
    st.sampled_from(["[" * 5000, '{"a":' * 5000, "NaN", "1e999", "9" * 5000]),
)


@settings(max_examples=1000, deadline=None)
@given(st.lists(frames, max_size=30), st.sampled_from([None, CLIENT_REQUESTS]))
def test_any_frames_give_only_messages_none_or_violations(
    sequence: list[str | bytes], accept: frozenset[str] | None
) -> None:
    assembler = MessageAssembler(accept)
    failed = False
    for frame in sequence:
        try:
            out = assembler.feed(frame)
        except ProtocolViolation as exc:
            failed = True
            assert 1000 <= exc.close_code <= 4999
            assert exc.reason
            assert len(exc.reason.encode("utf-8")) <= 123
            continue
        assert not failed, "a failed assembler must keep refusing"
        assert out is None or isinstance(out, Message)
        if out is not None:
            assert out.msgtype in (accept or KNOWN_TYPES)
            assert isinstance(out.msgid, str)
            assert isinstance(out.content, dict)
            assert out.reqid is None or isinstance(out.reqid, str)
            assert len({b.id for b in out.buffers}) == len(out.buffers)


buffers = st.lists(
    st.tuples(st.text(max_size=5), st.binary(max_size=12)), max_size=4, unique_by=lambda t: t[0]
)


@settings(max_examples=300, deadline=None)
@given(
    msgtype=st.sampled_from(TYPES),
    msgid=st.text(max_size=10),
    reqid=st.none() | st.text(max_size=10),
    content=st.dictionaries(st.text(max_size=6), json_values, max_size=5),
    metadata=st.none() | json_values,
    pairs=buffers,
    as_view=st.booleans(),
)
def test_encode_then_assemble_is_identity(
    msgtype: str,
    msgid: str,
    reqid: str | None,
    content: dict[str, Any],
    metadata: Any,
    pairs: list[tuple[str, bytes]],
    as_view: bool,
) -> None:
    sent = Message(
        msgtype,
        msgid,
        content,
        reqid,
        [Buffer(i, memoryview(d) if as_view else d) for i, d in pairs],
        metadata,
    )
    assembler = MessageAssembler()
    outs = [assembler.feed(frame) for frame in encode(sent)]
    assert outs[:-1] == [None] * (len(outs) - 1)
    got = outs[-1]
    assert got is not None
    assert (got.msgtype, got.msgid, got.reqid) == (msgtype, msgid, reqid)
    assert got.content == content
    assert got.metadata == ({} if metadata is None else metadata)
    assert [(b.id, bytes(b.data)) for b in got.buffers] == pairs

"""Turning `Message`s into WebSocket frames and frames back into `Message`s, with no I/O.

Theory of operation: a Bokeh message is 3 + 2n WebSocket messages ("frames" here): a text header
`{"msgid", "msgtype", ["reqid"], ["num_buffers"]}`, a text metadata object, a text content object,
then n pairs of a text buffer header `{"id": ...}` and a binary payload. `encode` returns that list
for the caller to write contiguously. `MessageAssembler` is the receiving state machine
HEADER -> METADATA -> CONTENT -> (BUFFER_HEADER -> BUFFER_PAYLOAD)*: the caller feeds every inbound
frame in order and gets a `Message` back from the frame that completes one, `None` otherwise.
Unlike the reference receiver it judges each frame as it arrives, so a bad header is refused before
any more of the message is read, and, given `max_bytes`, it bounds what a pending message may hold:
the bytes of all its frames so far (a peer could otherwise announce many buffers and park one
maximum-size frame per buffer). Anything wrong raises `ProtocolViolation` whose reason is short,
names the frame at fault, fits a close frame, and whose code is 1002 for a wrong structure or type,
1007 for text that is not JSON and 1009 for a message too big. After a violation the assembler
refuses every further frame.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, NoReturn

from aperture.errors import CLOSE_INVALID_DATA, CLOSE_PROTOCOL_ERROR, CLOSE_TOO_BIG, ProtocolViolation
from aperture.protocol.messages import (
    KNOWN_TYPES,
    PATCH_DOC,
    PULL_DOC_REPLY,
    PUSH_DOC,
    Buffer,
    Message,
    RawJSON,
)

__all__ = ["MAX_BUFFERS", "MAX_REASON_BYTES", "MessageAssembler", "encode"]

MAX_BUFFERS = 1000
"""Default cap on `num_buffers`; bokeh sends one buffer per binary array in a message."""

MAX_REASON_BYTES = 123
"""The longest close reason a WebSocket close frame can carry, in UTF-8 bytes."""

# Types whose header always carries num_buffers, even 0, as the reference server writes them.
_ALWAYS_COUNT_BUFFERS = frozenset({PATCH_DOC, PULL_DOC_REPLY, PUSH_DOC})

_EMPTY_OBJECT = "{}"


def encode(msg: Message) -> list[str | bytes]:
    """The frames of `msg`, in order: header, metadata, content, then a header and payload per buffer.

    Raises ValueError if the content holds a non-finite float (the serializer should have encoded it).
    """
    header: dict[str, Any] = {"msgid": msg.msgid, "msgtype": msg.msgtype}
    if msg.reqid is not None:
        header["reqid"] = msg.reqid
    if msg.buffers or msg.msgtype in _ALWAYS_COUNT_BUFFERS:
        header["num_buffers"] = len(msg.buffers)
    content = msg.content
    if not isinstance(content, RawJSON):
        content = json.dumps(content, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    metadata = _EMPTY_OBJECT if msg.metadata is None else json.dumps(msg.metadata, allow_nan=False)
    frames: list[str | bytes] = [json.dumps(header), metadata, content]
    for buffer in msg.buffers:
        data = buffer.data
        frames.append(json.dumps({"id": buffer.id}))
        frames.append(data if isinstance(data, bytes) else bytes(data))
    return frames


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


# One shared decoder: strict JSON (no NaN/Infinity), still on the C scanner.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _fail(reason: str, code: int = CLOSE_PROTOCOL_ERROR) -> NoReturn:
    encoded = reason.encode("utf-8", "replace")
    if len(encoded) > MAX_REASON_BYTES:
        reason = encoded[: MAX_REASON_BYTES - 3].decode("utf-8", "ignore") + "..."
    raise ProtocolViolation(reason, code)


def _show(text: str, limit: int = 32) -> str:
    """Peer text quoted for a reason: shortened, with control characters escaped."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _parse(frame: str | bytes, what: str) -> Any:
    if not isinstance(frame, str):
        _fail(f"expected a text frame for the {what}, got binary")
    try:
        return _DECODER.decode(frame)
    except ValueError:
        _fail(f"{what} is not valid JSON", CLOSE_INVALID_DATA)
    except RecursionError:
        _fail(f"{what} is nested too deeply", CLOSE_INVALID_DATA)


class MessageAssembler:
    """Receives the frames of one connection and yields complete, validated `Message`s.

    `accept`, when given, is the set of known msgtypes the peer may send (a server passes
    `CLIENT_REQUESTS`); `max_buffers` caps the `num_buffers` a header may announce; `max_bytes`,
    when given, caps the bytes (UTF-8 for text) of all frames of one message, header included.
    """

    def __init__(
        self,
        accept: frozenset[str] | None = None,
        max_buffers: int = MAX_BUFFERS,
        max_bytes: int | None = None,
    ) -> None:
        self._accept = accept
        self._max_buffers = max_buffers
        self._max_bytes = max_bytes
        self._failed: tuple[str, int] | None = None  # (reason, code); not the exception, to avoid a cycle
        self._reset()

    def _reset(self) -> None:
        # The state is the unbound handler of the next frame (bound methods would make a cycle).
        self._state: Callable[[MessageAssembler, str | bytes], Message | None] = MessageAssembler._on_header
        self._msgtype = ""
        self._msgid = ""
        self._reqid: str | None = None
        self._num_buffers = 0
        self._metadata: Any = None
        self._content: Any = None
        self._buffers: list[Buffer] = []
        self._buffer_ids: set[str] = set()
        self._buffer_id = ""
        self._pending_bytes = 0

    def feed(self, frame: str | bytes) -> Message | None:
        """Take the next inbound frame; return the `Message` it completes, if any.

        Raises ProtocolViolation when the frame breaks the protocol; the connection should then be
        closed with its `close_code` and `reason`, and this assembler is not usable any more.
        """
        if self._failed is not None:
            raise ProtocolViolation(*self._failed)
        try:
            if self._max_bytes is not None:
                self._count(frame, self._max_bytes)
            return self._state(self, frame)
        except ProtocolViolation as exc:
            self._failed = (exc.reason, exc.close_code)
            raise

    def _count(self, frame: str | bytes, limit: int) -> None:
        # isascii() is a flag check in CPython, so only non-ASCII text pays for an encode.
        if isinstance(frame, str) and not frame.isascii():
            size = len(frame.encode("utf-8", "surrogatepass"))
        else:
            size = len(frame)
        self._pending_bytes += size
        if self._pending_bytes > limit:
            _fail(f"message too big: its frames add up to more than {limit} bytes", CLOSE_TOO_BIG)

    def _on_header(self, frame: str | bytes) -> None:
        header = _parse(frame, "message header")
        if not isinstance(header, dict):
            _fail("message header must be a JSON object")
        self._msgtype = self._check_msgtype(header)
        self._msgid = _required_string(header, "msgid")
        reqid = header.get("reqid")
        if reqid is not None and not isinstance(reqid, str):
            _fail("'reqid' in the message header must be a string")
        self._reqid = reqid
        num_buffers = header.get("num_buffers", 0)
        if type(num_buffers) is not int or num_buffers < 0:
            _fail("'num_buffers' must be a non-negative integer")
        if num_buffers > self._max_buffers:
            _fail(f"'num_buffers' must be at most {self._max_buffers}, got {num_buffers}")
        self._num_buffers = num_buffers
        self._state = MessageAssembler._on_metadata

    def _check_msgtype(self, header: dict[str, Any]) -> str:
        msgtype = _required_string(header, "msgtype")
        if msgtype not in KNOWN_TYPES:
            _fail(f"unknown message type {_show(msgtype)}")
        if self._accept is not None and msgtype not in self._accept:
            _fail(f"message type {_show(msgtype)} is not accepted by the server")
        return msgtype

    def _on_metadata(self, frame: str | bytes) -> None:
        self._metadata = _parse(frame, "message metadata")
        self._state = MessageAssembler._on_content

    def _on_content(self, frame: str | bytes) -> Message | None:
        content = _parse(frame, "message content")
        if not isinstance(content, dict):
            _fail(f"{self._msgtype} content must be a JSON object")
        self._content = content
        if self._num_buffers == 0:
            return self._finish()
        self._state = MessageAssembler._on_buffer_header
        return None

    def _on_buffer_header(self, frame: str | bytes) -> None:
        ref = _parse(frame, "buffer header")
        if not isinstance(ref, dict) or len(ref) != 1 or not isinstance(ref.get("id"), str):
            _fail('buffer header must be exactly {"id": <string>}')
        buffer_id: str = ref["id"]
        if buffer_id in self._buffer_ids:
            _fail(f"buffer id {_show(buffer_id)} appears twice in one message")
        self._buffer_ids.add(buffer_id)
        self._buffer_id = buffer_id
        self._state = MessageAssembler._on_buffer_payload

    def _on_buffer_payload(self, frame: str | bytes) -> Message | None:
        if isinstance(frame, str):
            _fail("expected a binary frame for buffer payload, got text")
        self._buffers.append(Buffer(self._buffer_id, frame))
        if len(self._buffers) == self._num_buffers:
            return self._finish()
        self._state = MessageAssembler._on_buffer_header
        return None

    def _finish(self) -> Message:
        msg = Message(
            self._msgtype,
            self._msgid,
            self._content,
            reqid=self._reqid,
            buffers=self._buffers,
            metadata=self._metadata,
        )
        self._reset()
        return msg


def _required_string(header: dict[str, Any], key: str) -> str:
    if key not in header:
        _fail(f"message header has no {key!r}")
    value = header[key]
    if not isinstance(value, str):
        _fail(f"{key!r} in the message header must be a string")
    return value

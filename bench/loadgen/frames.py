"""Sans-I/O RFC 6455 framing: encode frames, decode a byte stream into complete messages.

Used by the load generator (client side: masked frames out, unmasked frames in) and by the
ceiling server (the reverse). No sockets here, so the tests feed bytes directly.
Masking XORs the payload as one big integer (`int.from_bytes`), which runs in C and costs
about the same as a memcpy for the message sizes the benchmark sends.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA

_rand32 = random.Random().getrandbits


class FrameError(Exception):
    """The peer sent bytes that are not valid RFC 6455 framing."""


def xor_mask(data: bytes, key: bytes) -> bytes:
    """Apply (or remove) a 4-byte WebSocket mask."""
    n = len(data)
    if n == 0:
        return b""
    reps = (n + 3) // 4
    k = int.from_bytes((key * reps)[:n], "little")
    return (int.from_bytes(data, "little") ^ k).to_bytes(n, "little")


def encode_frame(opcode: int, payload: bytes, *, mask: bool = True, key: bytes | None = None) -> bytes:
    """One FIN frame. Clients must mask (`mask=True`); servers must not."""
    n = len(payload)
    b0 = 0x80 | opcode
    mbit = 0x80 if mask else 0
    if n < 126:
        head = bytes((b0, mbit | n))
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    if key is None:
        key = _rand32(32).to_bytes(4, "little")
    return head + key + xor_mask(payload, key)


def encode_close(code: int | None = 1000, reason: str = "", *, mask: bool = True) -> bytes:
    payload = b"" if code is None else struct.pack("!H", code) + reason.encode()
    return encode_frame(OP_CLOSE, payload, mask=mask)


@dataclass(slots=True)
class WSMessage:
    """A complete WebSocket message (continuations joined) or a control frame."""

    opcode: int
    payload: bytes

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8")

    @property
    def close_code(self) -> int | None:
        if self.opcode != OP_CLOSE or len(self.payload) < 2:
            return None
        return int(struct.unpack("!H", self.payload[:2])[0])


class FrameDecoder:
    """Feed raw bytes, get complete messages. Accepts masked and unmasked frames."""

    def __init__(self, max_size: int = 1 << 28) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._frag_op: int | None = None
        self._frag: list[bytes] = []
        self.max_size = max_size

    def feed(self, data: bytes) -> list[WSMessage]:
        if data:
            self._buf += data
        out: list[WSMessage] = []
        buf, pos, end = self._buf, self._pos, len(self._buf)
        while end - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            if b0 & 0x70:
                raise FrameError("RSV bits set without a negotiated extension")
            n = b1 & 0x7F
            hlen = 2
            if n == 126:
                if end - pos < 4:
                    break
                n = (buf[pos + 2] << 8) | buf[pos + 3]
                hlen = 4
            elif n == 127:
                if end - pos < 10:
                    break
                n = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                hlen = 10
            if n > self.max_size:
                raise FrameError(f"frame of {n} bytes exceeds {self.max_size}")
            masked = b1 & 0x80
            if masked:
                hlen += 4
            if end - pos < hlen + n:
                break
            payload = bytes(buf[pos + hlen : pos + hlen + n])
            if masked:
                payload = xor_mask(payload, bytes(buf[pos + hlen - 4 : pos + hlen]))
            pos += hlen + n
            msg = self._assemble(b0 & 0x80, b0 & 0x0F, payload)
            if msg is not None:
                out.append(msg)
        if pos:
            del buf[:pos]
        self._pos = 0
        return out

    def _assemble(self, fin: int, opcode: int, payload: bytes) -> WSMessage | None:
        if opcode >= OP_CLOSE:
            if not fin or len(payload) > 125:
                raise FrameError("bad control frame")
            return WSMessage(opcode, payload)
        if opcode == OP_CONT:
            if self._frag_op is None:
                raise FrameError("continuation frame without a start")
            self._frag.append(payload)
            if not fin:
                return None
            op, parts = self._frag_op, self._frag
            self._frag_op, self._frag = None, []
            return WSMessage(op, b"".join(parts))
        if opcode not in (OP_TEXT, OP_BINARY):
            raise FrameError(f"reserved opcode {opcode:#x}")
        if self._frag_op is not None:
            raise FrameError("new data frame inside a fragmented message")
        if fin:
            return WSMessage(opcode, payload)
        self._frag_op, self._frag = opcode, [payload]
        return None

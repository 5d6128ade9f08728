"""The Bokeh protocol's messages as plain data: the type table, `Message`, and the server's constructors.

A `Message` is what travels between the framing layer and the rest of the server: a msgtype from
`KNOWN_TYPES`, an opaque msgid, an optional reqid (set on replies to name the request answered),
the parsed content, the parsed metadata and the binary buffers its content refers to by id.
Nothing here touches JSON text except `RawJSON`, which marks content that is already encoded so
that one PATCH-DOC can be serialized once and sent to many connections. The constructors build
exactly the messages the reference server sends; `error` never carries a traceback.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CLIENT_REQUESTS",
    "KNOWN_TYPES",
    "Buffer",
    "Message",
    "MessageIds",
    "RawJSON",
    "ack",
    "error",
    "ok",
    "patch_doc",
    "pull_doc_reply",
    "server_info_reply",
]

ACK = "ACK"
OK = "OK"
ERROR = "ERROR"
PULL_DOC_REQ = "PULL-DOC-REQ"
PULL_DOC_REPLY = "PULL-DOC-REPLY"
PUSH_DOC = "PUSH-DOC"
PATCH_DOC = "PATCH-DOC"
SERVER_INFO_REQ = "SERVER-INFO-REQ"
SERVER_INFO_REPLY = "SERVER-INFO-REPLY"

KNOWN_TYPES: frozenset[str] = frozenset(
    {
        ACK,
        OK,
        ERROR,
        PULL_DOC_REQ,
        PULL_DOC_REPLY,
        PUSH_DOC,
        PATCH_DOC,
        SERVER_INFO_REQ,
        SERVER_INFO_REPLY,
    }
)
"""Every msgtype of the protocol; anything else is a protocol violation."""

CLIENT_REQUESTS: frozenset[str] = frozenset({PULL_DOC_REQ, PUSH_DOC, PATCH_DOC, SERVER_INFO_REQ})
"""The msgtypes a server accepts from a client."""


@dataclass(frozen=True, slots=True)
class Buffer:
    """A binary payload that message content refers to as `{"id": id}`."""

    id: str
    data: bytes | memoryview


class RawJSON(str):
    """JSON text that is already encoded; the encoder sends it verbatim as the content frame."""

    __slots__ = ()


@dataclass(slots=True)
class Message:
    """One Bokeh protocol message. `metadata` None is sent as `{}`; inbound metadata is kept as parsed."""

    msgtype: str
    msgid: str
    content: Any
    reqid: str | None = None
    buffers: Sequence[Buffer] = ()
    metadata: Any = None


def ack(msgid: str) -> Message:
    """The ACK the server sends once a connection is open."""
    return Message(ACK, msgid, {})


def ok(msgid: str, reqid: str) -> Message:
    """The success reply to a PATCH-DOC or PUSH-DOC."""
    return Message(OK, msgid, {}, reqid=reqid)


def error(msgid: str, reqid: str, text: str) -> Message:
    """The failure reply to a request; `text` must be safe to show the peer (no traceback is sent)."""
    return Message(ERROR, msgid, {"text": text, "traceback": None}, reqid=reqid)


def pull_doc_reply(msgid: str, reqid: str, doc: Any, buffers: Sequence[Buffer] = ()) -> Message:
    """The reply to PULL-DOC-REQ; `doc` is the document object as a dict or as `RawJSON`."""
    content: Any
    if isinstance(doc, RawJSON):
        content = RawJSON('{"doc":' + doc + "}")
    else:
        content = {"doc": doc}
    return Message(PULL_DOC_REPLY, msgid, content, reqid=reqid, buffers=buffers)


def patch_doc(msgid: str, content: Any, buffers: Sequence[Buffer] = ()) -> Message:
    """A server-originated PATCH-DOC; `content` is `{"events": [...]}` as a dict or as `RawJSON`."""
    return Message(PATCH_DOC, msgid, content, buffers=buffers)


def server_info_reply(msgid: str, reqid: str, bokeh_version: str, server_version: str) -> Message:
    """The reply to SERVER-INFO-REQ."""
    content = {"version_info": {"bokeh": bokeh_version, "server": server_version}}
    return Message(SERVER_INFO_REPLY, msgid, content, reqid=reqid)


_instances = itertools.count()


def _letters(n: int) -> str:
    """Spell a non-negative integer in lowercase letters: 0 -> a, 25 -> z, 26 -> ba."""
    digits = ""
    while True:
        n, rem = divmod(n, 26)
        digits = chr(ord("a") + rem) + digits
        if n == 0:
            return digits


class MessageIds:
    """A source of fresh msgids: a short letter prefix, distinct per instance, then a counter.

    Ids look like `a1`, `a2`, ...; letters-then-digits keeps every prefix/counter pair unambiguous,
    so ids from different instances in one process never collide.
    """

    __slots__ = ("_counter", "prefix")

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = _letters(next(_instances)) if prefix is None else prefix
        self._counter = itertools.count(1)

    def __call__(self) -> str:
        return f"{self.prefix}{next(self._counter)}"

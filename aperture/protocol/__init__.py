"""The Bokeh WebSocket protocol, sans-I/O: messages as data, and framing to and from WebSocket frames.

This package imports only the standard library and `aperture.errors`; it never touches a socket or an
event loop. `messages` defines what a message is and builds the ones a server sends; `framing` turns
messages into frames (`encode`) and frames into messages (`MessageAssembler`), raising
`ProtocolViolation` with a close code for anything a peer gets wrong.
"""

from aperture.protocol.framing import MAX_BUFFERS, MessageAssembler, encode
from aperture.protocol.messages import (
    CLIENT_REQUESTS,
    KNOWN_TYPES,
    Buffer,
    Message,
    MessageIds,
    RawJSON,
    ack,
    error,
    ok,
    patch_doc,
    pull_doc_reply,
    server_info_reply,
)

__all__ = [
    "CLIENT_REQUESTS",
    "KNOWN_TYPES",
    "MAX_BUFFERS",
    "Buffer",
    "Message",
    "MessageAssembler",
    "MessageIds",
    "RawJSON",
    "ack",
    "encode",
    "error",
    "ok",
    "patch_doc",
    "pull_doc_reply",
    "server_info_reply",
]

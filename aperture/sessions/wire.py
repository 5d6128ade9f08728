"""Bokeh documents and events to and from protocol message contents.

The only module that touches Bokeh's serializer. Outgoing content is encoded to
JSON text once (`RawJSON`) so one PATCH-DOC can be written to every connection of a
session without re-serializing; binary arrays travel as protocol `Buffer`s.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from bokeh.core.serialization import Buffer as BokehBuffer
from bokeh.core.serialization import Serialized
from bokeh.core.types import ID
from bokeh.document import Document

from aperture.accelerate import activation
from aperture.accelerate import serialization as accelerated
from aperture.protocol import Buffer, RawJSON


def _default(obj: Any) -> Any:
    if isinstance(obj, BokehBuffer):
        return {"id": obj.id}
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


def _dumps(value: Any) -> RawJSON:
    return RawJSON(
        json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=False, default=_default)
    )


def _buffers(items: Sequence[BokehBuffer]) -> list[Buffer]:
    return [Buffer(b.id, b.data) for b in items]


def encode_events(doc: Document, events: Sequence[Any]) -> tuple[RawJSON, list[Buffer]]:
    """PATCH-DOC content for `events`; models it sends in full count as synced afterwards."""
    serializer = accelerated.serializer_class(activation.active())
    serialized = accelerated.encode_events(doc, events, serializer=serializer)
    return _dumps({"events": serialized.content}), _buffers(serialized.buffers)


def encode_document(doc: Document) -> tuple[RawJSON, list[Buffer]]:
    """The `doc` object of PULL-DOC-REPLY."""
    serialized = accelerated.encode_document(doc) if activation.active() else doc.to_json()
    return _dumps(serialized.content), _buffers(serialized.buffers or [])


def incoming(content: Any, buffers: Sequence[Buffer]) -> Serialized[Any]:
    """A received content plus its buffers, in the form Bokeh's deserializer reads."""
    return Serialized(content, [BokehBuffer(ID(b.id), bytes(b.data)) for b in buffers])

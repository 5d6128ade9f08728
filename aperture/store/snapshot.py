"""A session's document state as the store keeps it, and putting it back into a rebuilt document.

What a session's document looks like right after the app built it is reproducible: run the app
again for the same session (with the same model ids, `apps/model_ids.py`) and the same models
come out. So the store keeps only what changed since then - by clients (widget values, selections,
ranges), by Python callbacks and timers (`stream`, `patch`, new data, layout changes) - plus a
fingerprint of the built structure to tell whether a rebuild matches:

* `Baseline`: the fingerprint (ids and types of the models, the root ids) right after the build;
* `ChangeLog`: fed every document event of the session; at each flush it serializes what changed
  since the last one into store fields: `m:<id>` per model - for a model the app built, the
  properties changed since the build (their current values); for a model made later, all its
  non-default properties - and `doc` (roots and title) once they changed;
* `restore`: applies those fields to a freshly built document whose fingerprint matches: models
  made after the build are created from their records, then each changed property of a built
  model is set the way a client's change is applied (its Python `on_change` callbacks run, so
  state the app keeps outside the document - Panel's widget parameters, for example - follows),
  in the order the properties first changed; finally every stored value a callback changed
  otherwise is set again without callbacks, so the document ends exactly as stored.

Values are encoded with Bokeh's own serializer (models as references, arrays inline), and decoded
with Bokeh's deserializer, so what comes back is what Bokeh would have sent a client.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bokeh.core.serialization import Buffer, Deserializer, Serializer
from bokeh.core.types import ID
from bokeh.document import Document
from bokeh.model import Model

log = logging.getLogger("aperture.store")

MODEL_FIELD = "m:"
DOC_FIELD = "doc"


class RestoreMismatch(Exception):
    """The rebuilt document is not the one the stored state belongs to."""


class _Restoring:
    """The `setter` of changes made while restoring (never a connection: nothing is skipped)."""

    def __repr__(self) -> str:
        return "<restoring from the session store>"


RESTORING: Any = _Restoring()  # typed as Any: Bokeh's setters are sessions


@dataclass(frozen=True)
class Baseline:
    """The structure a build produced: which models (ids, types) and roots."""

    fingerprint: str
    model_ids: frozenset[str]


def baseline_of(document: Document) -> Baseline:
    models = sorted((m.id, m.__qualified_model__) for m in document.models)
    roots = [r.id for r in document.roots]
    text = "\n".join(f"{mid} {name}" for mid, name in models) + "\nroots " + " ".join(roots)
    return Baseline(hashlib.sha256(text.encode()).hexdigest()[:32], frozenset(mid for mid, _ in models))


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


class _StoreSerializer(Serializer):
    """Bokeh's serializer as the store uses it, made cheap for what a flush does many times a second.

    * Binary data (numpy arrays, typed arrays, bytes) goes to `blobs`, uncompressed, and the value
      refers to it by position (`{"type": "bytes", "data": {"id": "0"}}`), instead of Bokeh's
      inline gzip + base64 with a fresh random buffer id: no compression (numeric data hardly
      compresses), no id generation, and the same value always encodes the same way.
    * The document's models are found by id when met (`references` = the document's models by id),
      instead of a reference map of every model built for every encoding.
    """

    def __init__(self, models: Mapping[str, Model]) -> None:
        super().__init__(deferred=True)
        self._models = models
        self.blobs: list[bytes] = []

    def has_ref(self, obj: Any) -> bool:
        return self.get_ref(obj) is not None

    def get_ref(self, obj: Any) -> Any:
        ref = self._references.get(id(obj))
        if ref is None and isinstance(obj, Model) and self._models.get(obj.id) is obj:
            ref = obj.ref
        return ref

    def _encode_bytes(self, obj: bytes | memoryview) -> Any:
        self.blobs.append(obj.tobytes() if isinstance(obj, memoryview) else bytes(obj))
        return {"type": "bytes", "data": {"id": str(len(self.blobs) - 1)}}

    def encode_value(self, value: Any) -> tuple[Any, list[str]]:
        """(the value's representation, its binary parts as base64 text)."""
        self.blobs = []
        rep = self.encode(value)
        return rep, [base64.b64encode(b).decode("ascii") for b in self.blobs]


def _blobs(encoded: list[str]) -> list[Buffer]:
    return [Buffer(ID(str(i)), base64.b64decode(text)) for i, text in enumerate(encoded)]


@dataclass
class Delta:
    """Store fields to write and to delete after one flush."""

    fields: dict[str, bytes] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.fields or self.removed)


class ChangeLog:
    """What changed in one session's document since its build, and what is not stored yet."""

    def __init__(self, baseline: Baseline) -> None:
        self.baseline = baseline
        self.changed: dict[str, dict[str, None]] = {}  # built model id -> changed properties, in order
        self.order: dict[str, int] = {}  # model id -> sequence number of its first change
        self._dirty: dict[str, Model] = {}
        self._doc_dirty = False
        self._everything = False
        self._written_new: set[str] = set()  # ids of models made after the build that have a field
        self._sequence = 0

    @property
    def pending(self) -> bool:
        return bool(self._dirty) or self._doc_dirty or self._everything

    def record(self, event: Any) -> None:
        """Note one document event (called under the session lock, for every event)."""
        model = getattr(event, "model", None)
        kind = type(event).__name__
        if kind in ("RootAddedEvent", "RootRemovedEvent", "TitleChangedEvent"):
            self._doc_dirty = True
            if model is not None and model.id not in self.baseline.model_ids:
                self._mark(model)
            return
        attr = getattr(event, "attr", None)
        if model is None or attr is None:
            return  # MessageSentEvent and the like carry no state
        self._mark(model)
        if model.id in self.baseline.model_ids:
            self.changed.setdefault(model.id, {})[attr] = None

    def _mark(self, model: Model) -> None:
        if model.id not in self.order:
            self._sequence += 1
            self.order[model.id] = self._sequence
        self._dirty[model.id] = model

    def rewrite_all(self) -> None:
        """Write everything again at the next flush (the store lost our writes, or took a new owner)."""
        self._everything = True
        self._doc_dirty = True
        self._written_new.clear()

    def adopt_stored(self, models: dict[str, dict[str, Any]]) -> None:
        """Continue from the fields the store has for this session (it was restored from them): a
        built model's field keeps the properties stored before, and models made after the build
        that are gone by the next flush get their field deleted."""
        for mid, record in sorted(models.items(), key=lambda item: item[1].get("o", 0)):
            self._sequence += 1
            self.order.setdefault(mid, self._sequence)
            if mid in self.baseline.model_ids:
                changed = self.changed.setdefault(mid, {})
                for name in record.get("a", {}):
                    changed.setdefault(name, None)
            else:
                self._written_new.add(mid)

    def collect(self, document: Document) -> Delta:
        """Serialize what changed since the last flush (under the session lock)."""
        delta = Delta()
        if not self.pending:
            return delta
        current: dict[str, Model] = {m.id: m for m in document.models}
        serializer = _StoreSerializer(current)
        dirty, self._dirty = self._dirty, {}
        if self._everything:
            self._everything = False
            for mid in self.changed:
                model = current.get(mid) or dirty.get(mid)
                if model is not None:
                    dirty.setdefault(mid, model)
        for mid, model in current.items():  # models made after the build that the store lacks
            if mid not in self.baseline.model_ids and mid not in self._written_new:
                dirty.setdefault(mid, model)
        for mid, model in dirty.items():
            record = self._record(model, mid in current, serializer)
            if record is None:
                continue
            if mid not in self.baseline.model_ids:
                self._written_new.add(mid)
            delta.fields[MODEL_FIELD + mid] = _dumps(record)
        for mid in sorted(self._written_new - current.keys()):  # made later, since dropped: forget them
            self._written_new.discard(mid)
            delta.removed.append(MODEL_FIELD + mid)
        if self._doc_dirty:
            self._doc_dirty = False
            delta.fields[DOC_FIELD] = _dumps(
                {"roots": [r.id for r in document.roots], "title": document.title}
            )
        return delta

    def _record(self, model: Model, attached: bool, serializer: _StoreSerializer) -> dict[str, Any] | None:
        mid = model.id
        if mid in self.baseline.model_ids:
            names = list(self.changed.get(mid, ()))
            values = {name: getattr(model, name) for name in names}
        elif attached:
            values = model.properties_with_values(include_defaults=False)
        else:
            return None  # made later and already dropped again
        attributes: dict[str, Any] = {}
        blobs: dict[str, list[str]] = {}
        for name, value in values.items():
            try:
                attributes[name], encoded = serializer.encode_value(value)
            except Exception as exc:  # a value Bokeh cannot serialize could not reach a client either
                log.debug("Not storing %s.%s: %s", mid, name, exc)
                continue
            if encoded:
                blobs[name] = encoded
        record = {"t": model.__qualified_model__, "o": self.order.get(mid, 0), "a": attributes}
        if blobs:
            record["b"] = blobs  # binary parts per property, base64, referred to by position
        return record


@dataclass
class StoredState:
    """The document part of a stored session."""

    fingerprint: str
    models: dict[str, dict[str, Any]]  # model id -> {"t": type, "o": order, "a": {name: encoded}}
    doc: dict[str, Any] | None = None

    @classmethod
    def from_fields(cls, fingerprint: str, fields: dict[str, bytes]) -> StoredState:
        models: dict[str, dict[str, Any]] = {}
        doc = None
        for name, raw in fields.items():
            if name.startswith(MODEL_FIELD):
                models[name[len(MODEL_FIELD) :]] = json.loads(raw)
            elif name == DOC_FIELD:
                doc = json.loads(raw)
        return cls(fingerprint, models, doc)


@dataclass
class RestoreReport:
    properties: int = 0
    created: int = 0
    callback_errors: int = 0


def restore(document: Document, baseline: Baseline, state: StoredState) -> RestoreReport:
    """Apply `state` to `document`, just built for the same session (under the session lock).

    Raises RestoreMismatch, having changed nothing, if the build differs from the stored one.
    """
    if baseline.fingerprint != state.fingerprint:
        raise RestoreMismatch("the app built a different document this time")
    report = RestoreReport()
    built: dict[str, Model] = {m.id: m for m in document.models}
    for mid in state.models:
        if mid in baseline.model_ids and mid not in built:
            raise RestoreMismatch(f"model {mid} is missing from the rebuilt document")
    references: list[Model] = list(built.values())
    made: dict[str, Model] = {}
    creator = Deserializer(references=references, setter=RESTORING)
    for mid, record in state.models.items():
        if mid not in baseline.model_ids:
            made[mid] = creator.decode({"type": "object", "name": record["t"], "id": mid})
    report.created = len(made)
    everything = [*references, *made.values()]

    def decoded(record: dict[str, Any], name: str) -> Any:
        blobs = _blobs(record.get("b", {}).get(name, []))
        return Deserializer(references=everything, setter=RESTORING).decode(record["a"][name], blobs)

    for mid, model in made.items():  # models made after the build: no callbacks of their own yet
        for name in state.models[mid]["a"]:
            _quietly(model, name, decoded(state.models[mid], name))
    ordered = sorted(
        ((mid, record) for mid, record in state.models.items() if mid in baseline.model_ids),
        key=lambda item: item[1].get("o", 0),
    )
    for mid, record in ordered:  # as a client's change: on_change callbacks run
        model = built[mid]
        for name in record["a"]:
            try:
                model.set_from_json(name, decoded(record, name), setter=RESTORING)
                report.properties += 1
            except Exception as exc:
                report.callback_errors += 1
                log.warning("Restoring %s.%s raised %s: %s", mid, name, type(exc).__name__, exc)
    if state.doc is not None:
        _restore_roots(document, state.doc, {**built, **made})
    serializer = _StoreSerializer({m.id: m for m in everything})
    for mid, record in ordered:  # what a callback set otherwise goes back to the stored value
        model = built[mid]
        for name, value in record["a"].items():
            try:
                same = serializer.encode_value(getattr(model, name)) == (
                    value,
                    record.get("b", {}).get(name, []),
                )
            except Exception:
                same = False
            if not same:
                _quietly(model, name, decoded(record, name))
    return report


def _quietly(model: Model, name: str, value: Any) -> None:
    """Set a property without running the model's Python callbacks."""
    callbacks = model._callbacks
    model._callbacks = {}
    try:
        model.set_from_json(name, value, setter=RESTORING)
    finally:
        model._callbacks = callbacks


def _restore_roots(document: Document, doc: dict[str, Any], models: dict[str, Model]) -> None:
    wanted = [models[rid] for rid in doc.get("roots", []) if rid in models]
    if [r.id for r in document.roots] != [r.id for r in wanted]:
        for root in list(document.roots):
            document.remove_root(root, setter=RESTORING)  # type: ignore[arg-type]
        for root in wanted:
            document.add_root(root, setter=RESTORING)  # type: ignore[arg-type]
    title = doc.get("title")
    if isinstance(title, str) and title != document.title:
        document.set_title(title, setter=RESTORING)  # type: ignore[arg-type]

"""Encoding Bokeh models faster, with Bokeh's exact output, side effects and exceptions.

Theory of operation. Bokeh encodes a model with
`HasProps.query_properties_with_values(include_defaults=False)`: it reads every serialized
property (`descriptor.get_value`), which for an unset property computes its default, and only
then keeps the properties that were set, hold a cached unstable default, or are themed. Most
reads are thrown away. `FastSerializer` walks the same properties in the same order and makes
the same reads, except the ones it can prove unobservable: an unselected property whose default
is *stable* (not a callable, `InstanceDefault` or container, so Bokeh caches nothing), defined
(no `UnsetValueError`), valid without a converter and, for data specs, encodable without error.
That proof is made once per class (`_plan_for`), from the class's effective default. Values of
set properties and cached unstable defaults are read straight from the model's dicts where the
descriptor is Bokeh's plain `PropertyDescriptor` (exactly what its getter would return); every
other read goes through the descriptor itself, so unstable defaults are created and cached on
first access, data specs are converted and required properties raise, as with Bokeh.

Bokeh's own code encodes: a class whose serialization methods differ from Bokeh's
(`to_serializable`, `query_properties_with_values`, ...) or whose plan could not be made, a
model that shadows `__overridden_defaults__` itself, and every model while Bokeh's
`serialize_include_defaults` setting is on. Plans are cached per class (weakly) and assume what
Bokeh's own caches (`HasProps.properties`, `descriptors`) assume: a class's properties and
defaults do not change after it is created. A unit spec's read is left out only while its
`*_units` sibling has no themed value (a theme may make that invalid, and Bokeh would raise).

Events (`encode_events`). Bokeh's patch encoder starts from the document's synced models as
references: `Serializer(references=doc.models.synced_references)` builds a set and a dict of all
of them, with a new `Ref` per model, for every PATCH-DOC - a large part of the cost of a small
event. `_EventSerializer` takes the same snapshot (the document's model dict and new
models, copied) and makes a model's `Ref` on first use: `has_ref`/`get_ref`/`add_ref` answer
exactly as with Bokeh's dict, since a model is a reference iff it was synced at the start (and
alive, so no other object can have its `id()`) or was added since. `Model.ref` is a pure
function of the model's id; documents holding a model whose class has its own `ref` use Bokeh's
eager dict. Arrays, bytes and lists: see `aperture.accelerate.arrays`.

API: `FastSerializer` (a `bokeh.core.serialization.Serializer`), `serializer_class(enabled)`
(the class to use: fast or Bokeh's), `encode_document(doc)` (what `Document.to_json()` returns)
and `encode_events(doc, events)` (a PATCH-DOC's events, as Aperture's wire encodes them).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from inspect import getattr_static
from itertools import repeat
from operator import attrgetter, is_
from typing import Any, cast

import bokeh
import numpy as np
from bokeh.core.has_props import HasProps, is_DataModel
from bokeh.core.property.bases import Property
from bokeh.core.property.dataspec import DataSpec, UnitsSpec
from bokeh.core.property.descriptors import (
    DataSpecPropertyDescriptor,
    PropertyDescriptor,
    UnitsSpecPropertyDescriptor,
)
from bokeh.core.property.singletons import Intrinsic, Undefined
from bokeh.core.property.wrappers import PropertyValueContainer
from bokeh.core.serialization import Serialized, Serializer
from bokeh.document import Document
from bokeh.document.json import DocJson
from bokeh.document.models import DocumentModelManager
from bokeh.model import Model
from bokeh.settings import settings

from aperture.accelerate import arrays

__all__ = ["FastSerializer", "encode_document", "encode_events", "serializer_class"]

# A plan entry: (name, descriptor, plain, skip, guard) for each serialized property, in Bokeh's
# order. `skip`: an unselected property's read may be left out, unless the model has a themed
# value for `guard` (a unit spec reads its `*_units` sibling, which a theme may make invalid).
_Entry = tuple[str, PropertyDescriptor[Any], bool, bool, str | None]
_Plan = tuple[_Entry, ...]

_plans: weakref.WeakKeyDictionary[type, _Plan | None] = weakref.WeakKeyDictionary()

# A descriptor's read of an unset property: `__get__` -> `_get` -> `_get_default` -> the default.
_DEFAULT_READ = (
    "__get__",
    "_get",
    "_get_default",
    "instance_default",
    "class_default",
    "has_unstable_default",
)
_PROPERTY_DEFAULT = ("themed_default", "_raw_default", "_copy_default")
_HASPROPS = (
    "query_properties_with_values",
    "properties_with_values",
    "themed_values",
    "lookup",
    "properties",
)


def _same(owner: type, base: type, names: Sequence[str]) -> bool:
    return all(getattr_static(owner, name) is getattr_static(base, name) for name in names)


_kinds: dict[tuple[type, type, tuple[str, ...]], bool] = {}


def _same_kind(owner: type, base: type, names: tuple[str, ...]) -> bool:
    """`_same` for a descriptor or property class (a few dozen, all module-level), remembered."""
    key = (owner, base, names)
    if key not in _kinds:
        _kinds[key] = _same(owner, base, names)
    return _kinds[key]


def _plain(descriptor: Any) -> bool:
    """True if reading the descriptor is exactly `_property_values` / `_unstable_*` / default."""
    return _same_kind(type(descriptor), PropertyDescriptor, (*_DEFAULT_READ, "get_value"))


def _stable_default(cls: type[HasProps], name: str, descriptor: Any, overrides: dict[str, Any]) -> bool:
    """True if reading the unset, unthemed property has no effect and cannot raise."""
    prop = descriptor.property
    if not _same_kind(type(descriptor), PropertyDescriptor, _DEFAULT_READ):
        return False
    if not isinstance(prop, Property) or not _same_kind(type(prop), Property, _PROPERTY_DEFAULT):
        return False
    if descriptor.has_unstable_default(cls):
        return False
    raw = overrides[name] if name in overrides else prop._default
    if raw is Undefined or raw is Intrinsic or callable(raw) or descriptor.is_unstable(raw):
        return False
    try:
        prop.validate(raw, False)  # (not `is_valid`: that passes anything while validation is off)
        default = descriptor.class_default(cls)
    except Exception:  # an invalid default raises (or is converted) whenever Bokeh validates
        return False
    return default is not Undefined and not isinstance(default, PropertyValueContainer)


def _skip(
    cls: type[HasProps], name: str, descriptor: Any, overrides: dict[str, Any]
) -> tuple[bool, str | None]:
    """Whether an unselected read of the property may be left out, and its guard (see `_Entry`)."""
    if not _stable_default(cls, name, descriptor, overrides):
        return False, None
    if _plain(descriptor):
        return True, None
    kind = type(descriptor)
    encoder = getattr_static(type(descriptor.property), "to_serializable")
    if kind is DataSpecPropertyDescriptor and encoder is getattr_static(DataSpec, "to_serializable"):
        return _spec_encodes(cls, name, descriptor), None
    if (
        kind is UnitsSpecPropertyDescriptor
        and encoder is getattr_static(UnitsSpec, "to_serializable")
        and _same_kind(type(descriptor.property), UnitsSpec, ("get_units",))
    ):
        units = cls.lookup(name + "_units", raises=False)
        if units is None or not _plain(units) or not _stable_default(cls, units.name, units, overrides):
            return False, None
        return _spec_encodes(cls, name, descriptor, units=True), units.name
    return False, None


def _spec_encodes(cls: type[HasProps], name: str, descriptor: Any, *, units: bool = False) -> bool:
    """True if the data spec's default converts without error (and has units, if asked)."""
    owner = cast(HasProps, cls)  # DataSpec's conversion does not look at the model
    try:
        value = DataSpec.to_serializable(descriptor.property, owner, name, descriptor.class_default(cls))
    except Exception:
        return False
    return not units or hasattr(value, "units")


def _eligible(cls: type) -> bool:
    return (
        isinstance(cls, type)
        and issubclass(cls, Model)
        and getattr_static(cls, "to_serializable") is getattr_static(Model, "to_serializable")
        and _same(cls, HasProps, _HASPROPS)
    )


def _plan_for(cls: type[HasProps]) -> _Plan | None:
    entries: list[_Entry] = []
    overrides = cls._overridden_defaults()
    for name in cls.properties(_with_props=True):
        descriptor = cls.lookup(name)
        if not descriptor.serialized:
            continue
        skip, guard = _skip(cls, name, descriptor, overrides)
        entries.append((name, descriptor, _plain(descriptor), skip, guard))
    return tuple(entries)


def _plan(cls: type) -> _Plan | None:
    try:
        return _plans[cls]
    except KeyError:
        pass
    plan: _Plan | None = None
    if _eligible(cls):
        try:
            plan = _plan_for(cls)
        except Exception:  # Bokeh's own path will raise (or not) as it does
            plan = None
    _plans[cls] = plan
    return plan


def _query(obj: HasProps, plan: _Plan) -> dict[str, Any]:
    """`obj.query_properties_with_values(serialized, include_defaults=False)`, reads left out."""
    values = obj._property_values
    unstable = obj._unstable_default_values
    themed = obj.themed_values()
    selected = set(values)
    selected.update(unstable)
    themed_keys: set[str] | frozenset[str] = frozenset()
    if themed is not None:
        themed_keys = set(themed)
        selected |= themed_keys
    read = False  # whether a descriptor ran since `selected` was taken (it may have changed the dicts)
    result: dict[str, Any] = {}
    for name, descriptor, plain, skip, guard in plan:
        if name in selected:
            if plain and (name in values or (name in unstable and name not in themed_keys)):
                value = values[name] if name in values else unstable[name]
                if value is Undefined:
                    value = descriptor.get_value(obj)  # raises UnsetValueError, as Bokeh's getter does
            else:
                value = descriptor.get_value(obj)
                read = True
            if name not in themed_keys and isinstance(value, PropertyValueContainer) and name in unstable:
                continue
            result[name] = value
        elif (
            skip
            and (guard is None or guard not in themed_keys)
            and (not read or (name not in values and name not in unstable))
        ):
            continue
        else:
            descriptor.get_value(obj)
            read = True
    return result


class FastSerializer(Serializer):
    """Bokeh's `Serializer`, encoding models without the reads Bokeh would discard.

    Bokeh's `serialize_include_defaults` setting is read once per serializer, at its first
    model (Bokeh reads it at every model); when it is on, Bokeh's own code encodes the models.
    Binary NumPy arrays, bytes and lists are encoded by `aperture.accelerate.arrays` (same
    output and buffer ids; `simple_ids` read once per serializer).
    """

    _include_defaults: bool | None = None
    _simple_ids: bool | None = None  # (see `arrays.new_id`)

    def _encode(self, obj: Any) -> Any:
        kind = type(obj)
        if kind is list and list not in self._encoders and type(self) in _LIST_EXACT:
            return arrays.encode_list(self, obj)
        if kind is np.ndarray and np.ndarray not in self._encoders:
            rep = arrays.encode_ndarray(self, obj)
            if rep is not NotImplemented:
                return rep
        elif isinstance(obj, Model):
            plan = _plan(type(obj))
            if plan is not None:
                state = obj.__dict__
                if "_property_values" in state and "__overridden_defaults__" not in state:
                    if self._include_defaults is None:
                        self._include_defaults = bool(settings.serialize_include_defaults())
                    if not self._include_defaults:
                        return self._encode_model(obj, plan)
        return super()._encode(obj)

    def _encode_bytes(self, obj: bytes | memoryview) -> Any:
        return arrays.encode_bytes(self, obj)

    def _encode_model(self, obj: Model, plan: _Plan) -> Any:
        self.add_ref(obj, obj.ref)
        name = obj.__qualified_model__
        encode = self.encode
        attributes = {key: encode(value) for key, value in _query(obj, plan).items()}
        rep: dict[str, Any] = {"type": "object", "name": name, "id": obj.id}
        if attributes:
            rep["attributes"] = attributes
        return rep


def serializer_class(enabled: bool) -> type[Serializer]:
    """`FastSerializer` if acceleration is on, else Bokeh's `Serializer`."""
    return FastSerializer if enabled else Serializer


_data_models: tuple[tuple[type, ...], list[type]] = ((), [])


def _data_model_classes() -> list[type]:
    """The data models among the known models, in their order; the last answer is kept."""
    global _data_models
    known = tuple(Model.model_class_reverse_map.values())
    last_known, last_answer = _data_models
    if known != last_known:
        last_answer = [cls for cls in known if is_DataModel(cls)]
        _data_models = (known, last_answer)
    return list(last_answer)


def encode_document(doc: Document, *, serializer: type[Serializer] = FastSerializer) -> Serialized[DocJson]:
    """What `doc.to_json()` returns (buffers deferred), and its effect: synced models flushed."""
    data_models = _data_model_classes()
    encoder = serializer(deferred=True)
    defs = encoder.encode(data_models)
    config = encoder.encode(doc._config)
    roots = encoder.encode(doc._roots)
    callbacks = encoder.encode(doc.callbacks.js_event_callbacks)
    content = DocJson(version=bokeh.__version__, title=doc.title, config=config, roots=roots)
    if data_models:
        content["defs"] = defs
    if doc.callbacks.js_event_callbacks:
        content["callbacks"] = callbacks
    doc.models.flush_synced()
    return Serialized(content, buffers=encoder.buffers)


_MODEL_REF = getattr_static(Model, "ref")
_MISSING: Any = object()
_ref_of = attrgetter("ref")


def _lazy_refs(models: list[Model]) -> bool:
    """True if every model's class has Bokeh's `ref` (`Ref(id=model._id)`, pure): refs may be made lazily."""
    return all(map(is_, map(_ref_of, set(map(type, models))), repeat(_MODEL_REF)))


class _EventSerializer(FastSerializer):
    """`FastSerializer(references=models.synced_references)`, without building the references.

    The snapshot is taken here, as Bokeh takes it; a synced model's `Ref` is made when it is first
    needed (see the module docstring). Everything else is Bokeh's `_references` dict, as before.
    """

    def __init__(self, by_id: dict[int, Model], new: set[Model]) -> None:
        super().__init__()
        self._synced_by_id = by_id
        self._new = new

    def _synced(self, obj: Any) -> bool:
        return self._synced_by_id.get(id(obj), _MISSING) is obj and obj not in self._new

    def has_ref(self, obj: Any) -> bool:
        return id(obj) in self._references or self._synced(obj)

    def add_ref(self, obj: Any, ref: Any) -> None:
        assert not self.has_ref(obj)
        self._references[id(obj)] = ref

    def get_ref(self, obj: Any) -> Any:
        ref = self._references.get(id(obj))
        if ref is None and self._synced(obj):
            ref = self._references[id(obj)] = obj.ref
        return ref


_LIST_EXACT: frozenset[type] = frozenset({FastSerializer, _EventSerializer})
"""Serializers whose `get_ref` is Bokeh's, or `_EventSerializer`'s (no `str`/`int`/`float` is a
synced model), as `arrays.encode_list` assumes."""


def _event_serializer(doc: Document) -> Serializer | None:
    """An `_EventSerializer` for `doc`'s synced models, or None where Bokeh's eager dict is needed."""
    manager = doc.models
    if type(manager) is not DocumentModelManager:
        return None
    models = list(manager._models.values())
    if not _lazy_refs(models):
        return None
    return _EventSerializer(dict(zip(map(id, models), models, strict=True)), set(manager._new_models))


def encode_events(
    doc: Document,
    events: Sequence[Any],
    references: set[Model] | None = None,
    *,
    serializer: type[Serializer] = FastSerializer,
) -> Serialized[list[Any]]:
    """A PATCH-DOC's `events`; the models sent in full count as synced afterwards.

    `references` (default: the document's synced models) are sent as references only.
    """
    encoder = None
    if references is None and serializer is FastSerializer:
        encoder = _event_serializer(doc)
    if encoder is None:
        encoder = serializer(references=doc.models.synced_references if references is None else references)
    encoded = encoder.encode(list(events))
    doc.models.flush_synced(lambda model: not encoder.has_ref(model))
    return Serialized(encoded, buffers=encoder.buffers)

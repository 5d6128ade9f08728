"""Faster Bokeh model construction and validation, with Bokeh's exact results.

Building an app's document is mostly Bokeh's property machinery recomputing, for every model
and every read of an unset property, what is fixed once a class exists: the merged `Override`
defaults of the class's MRO, which properties have *unstable* defaults (containers, `Instance`
defaults, callables), the validated value of each constant default, the `_check*` validator
names of the class (found with `dir()` per model). `install()` replaces a few Bokeh internals
by versions that take these from a per-class cache and otherwise do what Bokeh does;
`uninstall()` puts Bokeh's own objects back and drops the cache. Entries are keyed by class,
weakly (a class an app script defines for each session can still die), and made lazily, by
Bokeh's own code on first use. Nothing is cached per instance.

The patched attributes, and why the result cannot differ (the proof is the differential test
`tests/accelerate/test_construction_oracle.py`: Bokeh with and without the patches, on every
concrete model class of Bokeh and Panel with generated values, and on the example and bench
apps: same ids, dicts, values, JSON, exceptions, warnings and validation issues):

* `HasProps.__init__`: Bokeh asks every unset property `has_unstable_default(self)`, an answer
  that depends only on the property and the class, then reads the unstable ones so they are
  created and cached. The list of those descriptors, in Bokeh's property order, is made once
  per class; the same `_get()` calls happen in the same order (so sequential ids match).
* `PropertyDescriptor._get_default` (an unset property's value; themed ones take Bokeh's path):
  - a constant default (no callable, no container) that is an immutable scalar or tuple of
    them, under Bokeh's own `themed_default`/`_copy_default`/`_raw_default` and a pure
    `prepare_value`: Bokeh's prepared value is kept and reused while the class's default is
    the same object. Bokeh recomputes, copies and re-validates the same value on every read.
  - an empty `dict`/`list`/`set` default: the first copy is validated by Bokeh; later copies
    are transformed and wrapped (`Property.prepare_value` without the repeated validation of
    an empty container, which cannot fail once it has passed). Where the wrap, transform and
    container constructors are Bokeh's own, the later copies are made as `PropertyValueList`
    (Set, Dict) with `__new__` and a one-entry instance dict `{"_owners": set()}`: the same
    type, contents and attributes as Bokeh's constructor gives, without the shared-keys value
    array CPython 3.11 allocates for the first attribute set in `__init__` (about 150 bytes
    less per container; these empty containers are most of a session's memory).
  - any other unstable default is made by Bokeh's `instance_default`, as before, and cached on
    the model as Bokeh does; only the repeated `has_unstable_default` question is skipped.
  A first read that raises (an invalid default) caches nothing and raises again next time.
* `HasProps._overridden_defaults`: the MRO walk is done once per class; every call still
  returns a new dict.
* `HasProps.themed_values`: `getattr(self, "__themed_values__", None)` raises and catches an
  AttributeError in `HasProps.__getattr__` for nearly every model. For classes with Bokeh's
  attribute access and no such class attribute, the instance dict gives the same answer.
* `HasProps.apply_theme`: an empty theme on a model without themed values is a no-op for
  Bokeh (nothing set, deleted or triggered); it returns at once. Every `Model.__init__` applies
  the default theme, which is empty.
* `PropertyDescriptor._trigger`: `hasattr(obj, "trigger")` on a non-Model `HasProps` (such as
  `figure()`'s options) builds "similar attributes" suggestions for an AttributeError it then
  discards; the answer is read from the class (still consulting Bokeh's error-diagnostics
  setting, so a bad value of it raises as before).
* `bokeh.model.util.visit_value_and_its_immediate_references` (also bound in
  `bokeh.model.model`): the same traversal, without Bokeh's import statement on every call.
* `check_integrity` (in `bokeh.core.validation.check`, `bokeh.core.validation` and
  `bokeh.document.document`): the same loop, with the sorted `_check*` names of `dir(model)`
  cached per class. The entry is made again when a class in the MRO gains or loses
  attributes; models with `_check*` attributes of their own or a `__dir__` of their own use
  `dir()`. Validators are still fetched per model, so a replaced one is seen.

Assumption (Bokeh's own, which caches `HasProps.properties()` per class forever): a class's
properties, descriptors, `Property` objects and `__overridden_defaults__` do not change after
the class is created; a property's `_default` being replaced is detected.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from copy import copy
from typing import Any

import bokeh.core.validation as bokeh_validation
import bokeh.core.validation.check as bokeh_check
import bokeh.document.document as bokeh_document
import bokeh.model.model as bokeh_model
import bokeh.model.util as bokeh_model_util
from bokeh.core.has_props import HasProps
from bokeh.core.property import bases as property_bases
from bokeh.core.property import container, dataspec, wrappers
from bokeh.core.property.descriptors import AliasPropertyDescriptor, PropertyDescriptor
from bokeh.core.property.singletons import Intrinsic, Undefined
from bokeh.core.property.wrappers import PropertyValueContainer
from bokeh.model import Model
from bokeh.settings import settings
from bokeh.util.dataclasses import entries, is_dataclass

__all__ = ["install", "installed", "patched_attributes", "uninstall"]

Property = property_bases.Property

# Bokeh's own objects, taken at import.
_HASPROPS_NAMES = ("__init__", "_overridden_defaults", "themed_values", "apply_theme")
_ORIG_HASPROPS = {name: vars(HasProps)[name] for name in _HASPROPS_NAMES}
_ORIG_DESCRIPTOR = {name: vars(PropertyDescriptor)[name] for name in ("_get_default", "_trigger")}
_ORIG_VISIT = bokeh_model_util.visit_value_and_its_immediate_references
_ORIG_CHECK_INTEGRITY = bokeh_check.check_integrity

_orig_get_default = _ORIG_DESCRIPTOR["_get_default"]
_orig_trigger = _ORIG_DESCRIPTOR["_trigger"]
_orig_themed_values = _ORIG_HASPROPS["themed_values"]
_orig_apply_theme = _ORIG_HASPROPS["apply_theme"]
_orig_overridden = _ORIG_HASPROPS["_overridden_defaults"].__func__

_HAS_UNSTABLE = (PropertyDescriptor.has_unstable_default, AliasPropertyDescriptor.has_unstable_default)
_INSTANCE_DEFAULT = PropertyDescriptor.instance_default
_THEMED_DEFAULT = Property.themed_default
_COPY_DEFAULT = vars(Property)["_copy_default"].__func__
_RAW_DEFAULT = Property._raw_default
_PREPARE_VALUE = Property.prepare_value
_TRANSFORM = Property.transform
# prepare_value implementations that are pure functions of (class, name, value) for scalars.
_PURE_PREPARE = (
    _PREPARE_VALUE,
    dataspec.DistanceSpec.prepare_value,
    dataspec.NullDistanceSpec.prepare_value,
    dataspec.SizeSpec.prepare_value,
    dataspec.ColorSpec.prepare_value,
)
_SCALARS = (type(None), bool, int, float, str)
_PROPERTIES = vars(HasProps)["properties"].__func__
_LOOKUP = vars(HasProps)["lookup"].__func__
_GETATTR = vars(HasProps)["__getattr__"]

_NOT_CACHED = object()  # `_ClassInfo.defaults` entry: Bokeh's path every time
_UNSTABLE = object()  # entry: has_unstable_default() is True; Bokeh makes the value
_UNKNOWN = object()


class _Stable:
    """Bokeh's prepared value of a constant default, valid while the default is `source`."""

    __slots__ = ("source", "value")

    def __init__(self, source: Any, value: Any) -> None:
        self.source = source
        self.value = value


class _FreshEmpty:
    """An empty dict/list/set default whose first copy passed Bokeh's validation.

    `wrapper` is the PropertyValue container class Bokeh's `wrap` gives for it, when that can
    be made without Bokeh's constructor (see `_empty_wrapper`), else None.
    """

    __slots__ = ("source", "wrapper")

    def __init__(self, source: Any, wrapper: type[Any] | None = None) -> None:
        self.source = source
        self.wrapper = wrapper


# Bokeh's wrap of an empty list/set/dict, and the container class it returns for it.
_CONTAINER_WRAPS: dict[tuple[Any, type[Any]], Any] = {
    (container.List.wrap, list): wrappers.PropertyValueList,
    (container.Set.wrap, set): wrappers.PropertyValueSet,
    (container.Dict.wrap, dict): wrappers.PropertyValueDict,
}
_BOKEH_CONTAINER_INITS = {
    cls: vars(cls)["__init__"]
    for cls in (
        wrappers.PropertyValueContainer,
        wrappers.PropertyValueList,
        wrappers.PropertyValueSet,
        wrappers.PropertyValueDict,
    )
}


def _empty_wrapper(kind: type[Any], source: Any) -> Any:
    """The class whose fresh empty instance, with an empty `_owners` set, is Bokeh's wrapped value.

    Bokeh's `PropertyValueList([])` (and Set, Dict) is an empty list whose instance dict holds
    one empty `_owners` set. On CPython 3.11 that dict is kept in a values array sized for
    the class's shared keys (about 340 bytes for one attribute); `__new__` plus a one-entry
    instance dict gives an object of the same type, contents and attributes in about 150
    bytes less, in half the time. Only for Bokeh's own wrap, transform and constructors.
    """
    wrapper: Any = _CONTAINER_WRAPS.get((kind.wrap, type(source)))
    if wrapper is None or kind.transform is not _TRANSFORM:
        return None
    if any(vars(cls).get("__init__") is not init for cls, init in _BOKEH_CONTAINER_INITS.items()):
        return None
    if wrapper.__new__ is not type(source).__new__ or "__slots__" in vars(wrapper):
        return None
    return wrapper


def _new_empty(wrapper: Any) -> Any:
    value = wrapper.__new__(wrapper)
    value.__dict__ = {"_owners": set()}
    return value


def _immutable(value: Any) -> bool:
    kind = type(value)
    return kind in _SCALARS or (kind is tuple and all(_immutable(item) for item in value))


class _ClassInfo:
    """What does not change for one HasProps class after its creation."""

    __slots__ = (
        "ref",
        "overrides",
        "bokeh_overrides",
        "plain_attrs",
        "has_trigger",
        "init_unstable",
        "defaults",
        "checks",
    )

    def __init__(self, cls: type[Any], ref: weakref.ref[type[Any]]) -> None:
        mro = cls.__mro__
        self.ref = ref
        self.overrides: dict[str, Any] = _orig_overridden(cls)
        # whether Bokeh's themed_default would see `overrides` (no class defines its own method)
        self.bokeh_overrides = all("_overridden_defaults" not in vars(c) for c in mro if c is not HasProps)
        # getattr(obj, "__themed_values__", None) and obj.themed_values() are the instance dict's
        self.plain_attrs: bool = (
            getattr(cls, "__getattribute__", None) is object.__getattribute__
            and getattr(cls, "__getattr__", None) is _GETATTR
            and all("__themed_values__" not in vars(c) for c in mro)
            and all("themed_values" not in vars(c) for c in mro if c is not HasProps)
        )
        self.has_trigger = any("trigger" in vars(c) for c in mro)
        self.init_unstable: Any = _UNKNOWN  # tuple of (name, descriptor), or None: Bokeh's loop
        self.defaults: dict[Any, Any] = {}  # descriptor -> _NOT_CACHED | _UNSTABLE | _Stable | _FreshEmpty
        self.checks: tuple[tuple[int, ...], tuple[str, ...]] | None = None


_infos: dict[int, _ClassInfo] = {}
_lock = threading.Lock()
_active = False


def _info(cls: type[Any]) -> _ClassInfo:
    info = _infos.get(id(cls))
    if info is not None and info.ref() is cls:
        return info
    return _new_info(cls)


def _new_info(cls: type[Any]) -> _ClassInfo:
    key = id(cls)

    def forget(ref: weakref.ref[type[Any]]) -> None:
        held = _infos.get(key)
        if held is not None and held.ref is ref:
            del _infos[key]

    info = _ClassInfo(cls, weakref.ref(cls, forget))
    with _lock:
        held = _infos.get(key)
        if held is not None and held.ref() is cls:
            return held
        _infos[key] = info
    return info


# --- HasProps.__init__ ------------------------------------------------------------------------


def _unstable_descriptors(obj: Any, cls: type[Any]) -> tuple[tuple[str, Any], ...] | None:
    """The descriptors whose unset values __init__ must create, in Bokeh's order; None if unsure."""
    if getattr(cls.properties, "__func__", None) is not _PROPERTIES:
        return None
    if getattr(cls.lookup, "__func__", None) is not _LOOKUP:
        return None
    found: list[tuple[str, Any]] = []
    try:
        for name in cls.properties(_with_props=True):
            descriptor = cls.lookup(name)
            if type(descriptor).has_unstable_default not in _HAS_UNSTABLE:
                return None
            if descriptor.has_unstable_default(obj):
                found.append((name, descriptor))
    except Exception:
        return None  # Bokeh's loop meets (and raises) the same problem
    return tuple(found)


def _init(self: Any, **properties: Any) -> None:
    super(HasProps, self).__init__()
    self._property_values = {}
    self._unstable_default_values = {}
    self._unstable_themed_values = {}

    for name, value in properties.items():
        if value is Undefined or value is Intrinsic:
            continue
        setattr(self, name, value)

    info = _info(type(self))
    unstable = info.init_unstable
    if unstable is _UNKNOWN:
        unstable = info.init_unstable = _unstable_descriptors(self, type(self))
    if unstable is None:
        for name in self.properties(_with_props=True):
            if name not in properties:
                descriptor = self.lookup(name)
                if descriptor.has_unstable_default(self):
                    descriptor._get(self)
    else:
        for name, descriptor in unstable:
            if name not in properties:
                descriptor._get(self)  # fills in `_unstable_*_values`
    self._initialized = True


# --- PropertyDescriptor._get_default ----------------------------------------------------------


def _get_default(self: Any, obj: Any) -> Any:
    name = self.name
    if name not in obj._property_values:
        info = _info(type(obj))
        themed = obj.__dict__.get("__themed_values__") if info.plain_attrs else obj.themed_values()
        if themed is None or name not in themed:
            unstable_values = obj._unstable_default_values
            if name in unstable_values:
                return unstable_values[name]
            entry = info.defaults.get(self, _UNKNOWN)
            kind = type(entry)
            if kind is _Stable:
                if name in info.overrides or self.property._default is entry.source:
                    return entry.value
            elif entry is _UNSTABLE:
                return _keep(self, obj, unstable_values, self.instance_default(obj))
            elif kind is _FreshEmpty:
                source = entry.source
                if not source and (name in info.overrides or self.property._default is source):
                    prop = self.property
                    wrapper = entry.wrapper
                    if (
                        wrapper is not None
                        and _CONTAINER_WRAPS.get((type(prop).wrap, type(source))) is wrapper
                    ):
                        return _keep(self, obj, unstable_values, _new_empty(wrapper))
                    return _keep(self, obj, unstable_values, prop.wrap(prop.transform(copy(source))))
            elif entry is _UNKNOWN:
                return _first_default(self, obj, info)
    return _orig_get_default(self, obj)


def _keep(descriptor: Any, obj: Any, unstable_values: dict[str, Any], default: Any) -> Any:
    if isinstance(default, PropertyValueContainer):
        default._register_owner(obj, descriptor)
    unstable_values[descriptor.name] = default
    return default


def _first_default(descriptor: Any, obj: Any, info: _ClassInfo) -> Any:
    """Bokeh's default for this property, noting in `info` how to get it next time."""
    if type(descriptor).has_unstable_default not in _HAS_UNSTABLE:
        info.defaults[descriptor] = _NOT_CACHED
        return _orig_get_default(descriptor, obj)
    validated = property_bases.validation_on()
    value = _orig_get_default(descriptor, obj)  # raises for an invalid default, caching nothing
    name = descriptor.name
    prop = descriptor.property
    source = info.overrides[name] if name in info.overrides else prop._default
    kind = type(prop)
    bokeh_default = (
        validated
        and info.bokeh_overrides
        and type(descriptor).instance_default is _INSTANCE_DEFAULT
        and kind.themed_default is _THEMED_DEFAULT
        and getattr(kind._copy_default, "__func__", None) is _COPY_DEFAULT
        and kind._raw_default is _RAW_DEFAULT
    )
    entry: Any = _NOT_CACHED
    if descriptor.has_unstable_default(obj):
        entry = _UNSTABLE
        empty = type(source) in (dict, list, set) and not source
        if bokeh_default and empty and kind.prepare_value is _PREPARE_VALUE:
            entry = _FreshEmpty(source, _empty_wrapper(kind, source))
    elif bokeh_default and kind.prepare_value in _PURE_PREPARE and _immutable(source) and _immutable(value):
        entry = _Stable(source, value)
    info.defaults[descriptor] = entry
    return value


# --- the small ones ---------------------------------------------------------------------------


def _overridden_defaults(cls: type[Any]) -> dict[str, Any]:
    return dict(_info(cls).overrides)


def _themed_values(self: Any) -> dict[str, Any] | None:
    if _info(type(self)).plain_attrs:
        themed: dict[str, Any] | None = self.__dict__.get("__themed_values__")
        return themed
    return _orig_themed_values(self)  # type: ignore[no-any-return]


def _apply_theme(self: Any, property_values: dict[str, Any]) -> None:
    if not property_values and self.themed_values() is None:
        return
    _orig_apply_theme(self, property_values)


def _trigger(self: Any, obj: Any, old: Any, value: Any, *, hint: Any = None, setter: Any = None) -> None:
    info = _info(type(obj))
    if info.plain_attrs and not info.has_trigger and "trigger" not in obj.__dict__:
        settings.perform_error_diagnostics()  # what Bokeh's failing lookup would read (and raise)
        return
    _orig_trigger(self, obj, old, value, hint=hint, setter=setter)


def _visit_value(obj: Any, visitor: Callable[[Any], None]) -> None:
    kind = type(obj)
    if kind is int or kind is float or kind is str:
        return
    if kind is list or issubclass(kind, (list, tuple)):
        for item in obj:
            _visit_value(item, visitor)
    elif issubclass(kind, dict):
        for key, item in obj.items():
            _visit_value(key, visitor)
            _visit_value(item, visitor)
    elif issubclass(kind, HasProps):
        if issubclass(kind, Model):
            visitor(obj)
        else:
            bokeh_model_util.visit_immediate_value_references(obj, visitor)
    elif is_dataclass(obj):
        for _field, item in entries(obj):
            _visit_value(item, visitor)


def _check_names(model: Any) -> Iterable[str]:
    """The names in dir(model) that start with "_check", sorted."""
    cls = type(model)
    own = getattr(model, "__dict__", {})
    if getattr(cls, "__dir__", None) is not object.__dir__ or any(name.startswith("_check") for name in own):
        return [name for name in dir(model) if name.startswith("_check")]
    info = _info(cls)
    stamp = tuple(len(vars(c)) for c in cls.__mro__)
    cached = info.checks
    if cached is None or cached[0] != stamp:
        names = tuple(sorted(name for name in type.__dir__(cls) if name.startswith("_check")))
        info.checks = cached = (stamp, names)
    return cached[1]


def _check_integrity(models: Iterable[Any]) -> Any:
    issues = bokeh_check.ValidationIssues()
    for model in models:
        validators = [
            check
            for check in (getattr(model, name) for name in _check_names(model))
            if getattr(check, "validator_type", None)
        ]
        for check in validators:
            if check.validator_type == "error":
                issues.error.extend(check())
            else:
                issues.warning.extend(check())
    return issues


# --- switching --------------------------------------------------------------------------------


def _table() -> list[tuple[Any, str, Any, Any]]:
    """(owner, attribute, Bokeh's object, ours) for every patched attribute."""
    ours = {
        "__init__": _init,
        "_overridden_defaults": _OVERRIDDEN_DEFAULTS,
        "themed_values": _themed_values,
        "apply_theme": _apply_theme,
    }
    table: list[tuple[Any, str, Any, Any]] = [
        (HasProps, name, _ORIG_HASPROPS[name], ours[name]) for name in _HASPROPS_NAMES
    ]
    table += [
        (PropertyDescriptor, "_get_default", _orig_get_default, _get_default),
        (PropertyDescriptor, "_trigger", _orig_trigger, _trigger),
    ]
    for module in (bokeh_model_util, bokeh_model):
        table.append((module, "visit_value_and_its_immediate_references", _ORIG_VISIT, _visit_value))
    for module in (bokeh_check, bokeh_validation, bokeh_document):
        table.append((module, "check_integrity", _ORIG_CHECK_INTEGRITY, _check_integrity))
    return table


_OVERRIDDEN_DEFAULTS = classmethod(_overridden_defaults)
for _ours, _theirs in (
    (_init, _ORIG_HASPROPS["__init__"]),
    (_get_default, _orig_get_default),
    (_overridden_defaults, _orig_overridden),
    (_themed_values, _orig_themed_values),
    (_apply_theme, _orig_apply_theme),
    (_trigger, _orig_trigger),
    (_visit_value, _ORIG_VISIT),
    (_check_integrity, _ORIG_CHECK_INTEGRITY),
):
    _ours.__doc__ = _theirs.__doc__


def install() -> None:
    """Patch Bokeh (idempotent); RuntimeError, changing nothing, if an attribute is not Bokeh's own."""
    global _active
    with _lock:
        if _active:
            return
        table = _table()
        for owner, name, original, _ours in table:
            if vars(owner).get(name) is not original:
                raise RuntimeError(f"{owner.__name__}.{name} is not Bokeh's own: not accelerating")
        for owner, name, _original, ours in table:
            setattr(owner, name, ours)
        _active = True


def uninstall() -> None:
    """Put Bokeh's own objects back and drop the cache (idempotent)."""
    global _active
    with _lock:
        if not _active:
            return
        for owner, name, original, _ours in _table():
            setattr(owner, name, original)
        _infos.clear()
        _active = False


def installed() -> bool:
    return _active


def patched_attributes() -> list[tuple[Any, str, Any]]:
    """(owner, attribute name, Bokeh's own object) for every attribute `install()` replaces."""
    return [(owner, name, original) for owner, name, original, _ours in _table()]

"""`accelerate.construction` against Bokeh as the oracle: same models, same ids, same errors.

Every case runs three times from the same point of Bokeh's id counter: with Bokeh alone, then
accelerated with an empty cache ("cold"), then accelerated again ("warm", the caches filled
by the cold run). Each run records a list of observations, which must be equal: the outcome of
construction (or the exception type and message), the warnings raised, the models' internal
dicts (`_property_values`, `_unstable_default_values`, `_unstable_themed_values`: keys in
order and the JSON of each value), which of those values are shared between two instances
or with the class's default, every property read (value, and for mutable values whether
reads or instances share one object), `_overridden_defaults()`, `properties_with_values()`
with and without defaults, the model's serialization, `check_integrity` issues and
`Document.validate()`'s log; then the same in a document (with a generated theme, later
removed), the change events of setting properties there and the document's models.
Cases: every concrete model class of Bokeh and Panel with defaults; generated keyword
arguments and themes (hypothesis: valid values for the simple property kinds, and junk);
probe classes for what the real ones lack (a replaced default, validators added later, an
invalid or mutable constant default, validation switched off); the example and bench apps
built into documents (`Document.to_json()` compared as text). Panel's first build of an app
differs from later ones, so apps are built once before, and twice by Bokeh to show they are
deterministic.
"""

from __future__ import annotations

import copy
import gc
import json
import logging
import random
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import bokeh.core.validation as bokeh_validation
import bokeh.models  # registers every Bokeh model
import bokeh.plotting  # noqa: F401  (figure, gmap)
import bokeh.util.serialization as bokeh_ids
import numpy as np
import panel.models  # noqa: F401  (registers Panel's models)
import pytest
from bokeh.application.handlers.directory import DirectoryHandler
from bokeh.application.handlers.script import ScriptHandler
from bokeh.core import properties as bp
from bokeh.core.has_props import HasProps, is_abstract
from bokeh.core.property.bases import SingleParameterizedProperty
from bokeh.core.property.descriptors import UnsetValueError
from bokeh.core.property.validation import validate as property_validation
from bokeh.core.property.wrappers import PropertyValueContainer
from bokeh.core.serialization import Serializer
from bokeh.document import Document
from bokeh.model import Model
from bokeh.themes import Theme
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from aperture.accelerate import construction

REPO = Path(__file__).resolve().parents[2]
APPS = [
    "examples/sliders.py",
    "examples/dashboard",
    "examples/streaming.py",
    "examples/panel_dashboard.py",
    *sorted(f"bench/apps/{p.name}" for p in (REPO / "bench" / "apps").glob("*.py")),
]


def _concrete_classes() -> list[type[Model]]:
    found = {
        cls
        for cls in Model.model_class_reverse_map.values()
        if cls.__module__.split(".")[0] in ("bokeh", "panel") and not is_abstract(cls)
    }
    return sorted(found, key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


CLASSES = _concrete_classes()
BY_NAME = {f"{cls.__module__}.{cls.__qualname__}": cls for cls in CLASSES}


# --- running a case three ways ------------------------------------------------------------------

_high_water = 0


def _rewound(case: Callable[[], list[Any]], base: int) -> list[Any]:
    """Run `case` with Bokeh's id counter at `base`; afterwards it is past every id used."""
    global _high_water
    _high_water = max(_high_water, bokeh_ids._simple_id)
    bokeh_ids._simple_id = base
    random.seed(1234)
    np.random.seed(1234)
    try:
        return case()
    finally:
        _high_water = max(_high_water, bokeh_ids._simple_id)
        bokeh_ids._simple_id = _high_water


@contextmanager
def _restoring_switch() -> Iterator[None]:
    was = construction.installed()
    try:
        yield
    finally:
        (construction.install if was else construction.uninstall)()


def differential(case: Callable[[], list[Any]], *, settle: bool = False) -> None:
    """Bokeh's observations of `case` must equal the accelerated ones, cold and warm.

    With `settle`, Bokeh runs the case once first (Panel sets itself up on a first build) and
    then twice, to show the case is deterministic and so can be compared at all.
    """
    base = max(_high_water, bokeh_ids._simple_id) + 1  # ids no model made before this case has
    with _restoring_switch():
        construction.uninstall()
        if settle:
            _rewound(case, base)
        expected = _rewound(case, base)
        if settle:
            assert _rewound(case, base) == expected, "the case is not deterministic under Bokeh alone"
        construction.install()
        cold = _rewound(case, base)
        warm = _rewound(case, base)
    for label, got in (("cold", cold), ("warm", warm)):
        if got != expected:
            pytest.fail(f"accelerated ({label}) differs from Bokeh: {_first_difference(expected, got)}")


def _first_difference(expected: list[Any], got: list[Any]) -> str:
    for index, (want, have) in enumerate(zip(expected, got, strict=False)):
        if want != have:
            return (
                f"observation {index}:\n  bokeh:       {str(want)[:1500]}\n  accelerated: {str(have)[:1500]}"
            )
    return f"{len(expected)} observations from Bokeh, {len(got)} accelerated"


# --- observations ---------------------------------------------------------------------------------


def encoded(value: Any) -> str:
    try:
        return json.dumps(Serializer(deferred=False).encode(value), sort_keys=True)
    except Exception as exc:
        return f"raised {type(exc).__name__}: {exc}"


def outcome(action: Callable[[], Any]) -> tuple[Any, ...]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result: Any = ("ok", action())
        except Exception as exc:
            result = ("raised", type(exc).__name__, str(exc))
    return (*result, [(w.category.__name__, str(w.message)) for w in caught])


_DICTS = ("_property_values", "_unstable_default_values", "_unstable_themed_values")


def state(model: HasProps) -> dict[str, Any]:
    themed = model.__dict__.get("__themed_values__")
    return {
        "id": getattr(model, "id", None),
        "initialized": model._initialized,
        "themed": None if themed is None else [(k, encoded(v)) for k, v in themed.items()],
        **{attr: [(k, encoded(v)) for k, v in getattr(model, attr).items()] for attr in _DICTS},
        "containers": containers(model),
    }


def containers(model: HasProps) -> list[Any]:
    """The PropertyValue containers a model holds: class, instance attributes, owners."""
    return [
        (
            attr,
            key,
            type(value).__qualname__,
            sorted((name, type(item).__name__) for name, item in vars(value).items()),
            [(owner is model, descriptor.name) for owner, descriptor in value._owners],
        )
        for attr in _DICTS
        for key, value in getattr(model, attr).items()
        if isinstance(value, PropertyValueContainer)
    ]


def sharing(first: HasProps, second: HasProps) -> list[Any]:
    """Which values two instances share with each other, or with their class's default."""
    found = []
    for attr in _DICTS:
        mine, theirs = getattr(first, attr), getattr(second, attr)
        for key, value in mine.items():
            prop = type(first).lookup(key).property
            found.append((attr, key, theirs.get(key) is value, getattr(prop, "_default", None) is value))
    return found


def issues(models: Any) -> list[Any]:
    """check_integrity's issues; sorted for a set of models, whose order is that of their addresses."""
    found = bokeh_validation.check_integrity(models)  # looked up now: install() rebinds it
    kinds = ("error", "warning")
    listed = [(kind, i.code, i.name, i.text, i.extra) for kind in kinds for i in getattr(found, kind)]
    return sorted(listed, key=repr) if isinstance(models, set) else listed


def model_observations(model: HasProps) -> list[Any]:
    return [
        state(model),
        outcome(
            lambda: {k: encoded(v) for k, v in model.properties_with_values(include_defaults=False).items()}
        ),
        outcome(lambda: {k: encoded(v) for k, v in model.properties_with_values().items()}),
        outcome(lambda: encoded(model)),
        state(model),
        outcome(lambda: issues([model])),
        state(model),
    ]


def reads(first: HasProps, second: HasProps) -> list[Any]:
    """Every property read: its value and, if mutable, whether a second read (or instance) shares it."""
    found = []
    for name in sorted(type(first).properties()):
        value = outcome(lambda name=name: getattr(first, name))
        again = outcome(lambda name=name: getattr(first, name))
        other = outcome(lambda name=name: getattr(second, name))
        found.append((name, value[0], encoded(value[1]) if value[0] == "ok" else value))
        if not _immutable(value[1]):  # Python promises nothing about the identity of equal str, int...
            found.append((name, value[1] is again[1], value[1] is other[1]))
    return found


def _immutable(value: Any) -> bool:
    if type(value) in (type(None), bool, int, float, str):
        return True
    return type(value) is tuple and all(_immutable(item) for item in value)


def class_observations(cls: type[HasProps]) -> list[Any]:
    """`_overridden_defaults()`: its items, and that each call returns a dict of its own."""
    overrides = cls._overridden_defaults()
    overrides["__probe__"] = True
    return [sorted((key, repr(value)) for key, value in cls._overridden_defaults().items())]


class Events:
    """A document's change events, as (kind, model id, attribute, JSON of the new value)."""

    def __init__(self, doc: Document) -> None:
        self.seen: list[Any] = []
        doc.on_change(self)

    def __call__(self, event: Any) -> None:
        model = getattr(event, "model", None)
        new = encoded(getattr(event, "new", None))
        self.seen.append(
            (type(event).__name__, getattr(model, "id", None), getattr(event, "attr", None), new)
        )


class _Log(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.levelname, record.getMessage()))


def validation_log(doc: Document) -> tuple[Any, ...]:
    handler = _Log()
    logger = logging.getLogger("bokeh.core.validation.check")
    logger.addHandler(handler)
    try:
        result = outcome(doc.validate)
    finally:
        logger.removeHandler(handler)
    return (result, sorted(handler.records))  # issues of one code come in the order of a set


def document_observations(doc: Document) -> list[Any]:
    models = sorted(doc.models, key=lambda m: m.id)
    return [
        [state(m) for m in models],
        outcome(lambda: json.dumps(doc.to_json(deferred=False), sort_keys=True)),
        [state(m) for m in models],
        outcome(lambda: [issues(root.references()) for root in doc.roots]),
        validation_log(doc),
    ]


# --- cases ---------------------------------------------------------------------------------------


def construct(cls: type[Model], kwargs: dict[str, Any], theme: dict[str, Any] | None = None) -> list[Any]:
    """Build two instances, look at them alone, then in a document with `theme`, then without."""
    built: list[Any] = []
    observations: list[Any] = []
    for _ in range(2):
        observations.append(outcome(lambda: built.append(cls(**copy.deepcopy(kwargs)))))
    if len(built) < 2:
        return observations
    first, second = built
    observations += [sharing(first, second), *class_observations(cls), *model_observations(first)]
    observations += [reads(first, second), sharing(first, second)]
    doc = Document()
    if theme is not None:
        doc.theme = Theme(json={"attrs": {cls.__name__: theme}})
    observations.append(outcome(lambda: doc.add_root(first)))
    observations += [*model_observations(first), *document_observations(doc)]
    events = Events(doc)
    observations.append(outcome(lambda: setattr(first, "tags", [(second,)])))  # second joins the document
    observations.append(outcome(lambda: setattr(first, "name", "renamed")))
    observations += [
        list(events.seen),
        sorted(m.id for m in doc.models),
        outcome(lambda: doc.get_model_by_name("renamed").id),
    ]
    events.seen.clear()
    observations.append(outcome(lambda: setattr(doc, "theme", None)))
    # a theme reaches the document's models in the order of a set (of objects), so sorted
    observations += [state(first), outcome(lambda: encoded(first)), sorted(events.seen, key=repr)]
    return observations


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_default_construction(name: str) -> None:
    differential(lambda: construct(BY_NAME[name], {}))


class Junk:
    """A value no property accepts, with a repr that does not depend on its address."""

    def __repr__(self) -> str:
        return "Junk()"

    def __deepcopy__(self, memo: Any) -> Junk:
        return self


JUNK = [Junk(), -1, 0.5, 7, "zzz", "", None, True, [1, "a"], {"k": 1}, (1, 2), float("nan")]
COLORS = ["red", "firebrick", "#ff0000", "#12345678", (1, 2, 3), (1, 2, 3, 0.5), "rgb(1, 2, 3)", "nocolor"]
TEXT = st.text(alphabet="abxy_#0 ", max_size=6)


def values_for(prop: Any, depth: int = 0) -> st.SearchStrategy[Any] | None:
    """Valid values for the simple property kinds; None for what we do not generate."""
    if depth > 3:
        return None
    inner: st.SearchStrategy[Any] | None
    if isinstance(prop, bp.Color):
        return st.sampled_from(COLORS)
    if isinstance(prop, bp.Enum):
        return st.sampled_from(list(prop._enum))
    if isinstance(prop, bp.Bool):
        return st.booleans()
    if isinstance(prop, bp.Int):
        return st.integers(-3, 400)
    if isinstance(prop, bp.Float):
        return st.floats(-5, 500, allow_nan=False) | st.integers(-3, 400)
    if isinstance(prop, bp.String):
        return TEXT
    if isinstance(prop, bp.Nullable):
        inner = values_for(prop.type_param, depth + 1)
        return st.none() if inner is None else st.none() | inner
    if isinstance(prop, SingleParameterizedProperty):
        return values_for(prop.type_param, depth + 1)
    if isinstance(prop, bp.Either):
        options = [s for s in (values_for(p, depth + 1) for p in prop.type_params) if s is not None]
        return st.one_of(options) if options else None
    if isinstance(prop, bp.Set):
        return st.sets(TEXT, max_size=2) if isinstance(prop.item_type, bp.String) else None
    if isinstance(prop, (bp.List, bp.Seq)):
        inner = values_for(prop.item_type, depth + 1)
        return None if inner is None else st.lists(inner, max_size=3)
    if isinstance(prop, bp.Tuple):
        parts = [values_for(p, depth + 1) for p in prop.type_params]
        return None if any(p is None for p in parts) else st.tuples(*parts)  # type: ignore[arg-type]
    if isinstance(prop, bp.Dict):
        inner = values_for(prop.values_type, depth + 1)
        keys = values_for(prop.keys_type, depth + 1)
        return None if inner is None or keys is None else st.dictionaries(keys, inner, max_size=2)
    return None


def value_or_junk(prop: Any) -> st.SearchStrategy[Any]:
    """A valid value three times in four where we can make one, else junk."""
    valid = values_for(prop)
    junk = st.sampled_from(JUNK)
    return junk if valid is None else st.one_of(valid, valid, valid, junk)


def _generated(name: str) -> list[str]:
    props = BY_NAME[name].properties(_with_props=True)
    return sorted(key for key, prop in props.items() if values_for(prop) is not None)


GENERATED = {name: _generated(name) for name in BY_NAME}


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
    """A class, keyword arguments for it (mostly generated values, sometimes junk), maybe a theme."""
    name = draw(st.sampled_from(sorted(BY_NAME)))
    props = BY_NAME[name].properties(_with_props=True)
    kwargs: dict[str, Any] = {}
    if GENERATED[name]:
        for key in draw(st.lists(st.sampled_from(GENERATED[name]), max_size=5)):
            kwargs[key] = draw(value_or_junk(props[key]))
    if props and draw(st.integers(0, 9)) == 0:  # any property, junk or not
        key = draw(st.sampled_from(sorted(props)))
        kwargs[key] = draw(value_or_junk(props[key]))
    theme = None
    if props and draw(st.booleans()):
        themed = draw(st.lists(st.sampled_from(sorted(props)), min_size=1, max_size=3))
        theme = {key: draw(value_or_junk(props[key])) for key in themed}
    return name, kwargs, theme


@settings(
    max_examples=800,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(cases())
@example(("bokeh.models.widgets.sliders.Slider", {"start": 0, "end": 1, "value": 5}, {"bar_color": "red"}))
@example(("bokeh.plotting._figure.figure", {"title": "t", "width": -1}, {"background_fill_color": None}))
@example(("bokeh.models.plots.Plot", {"renderers": [1, "a"]}, {"outline_line_color": Junk()}))
@example(("bokeh.models.layouts.Row", {"children": []}, {"styles": {"k": 1}}))
@example(("bokeh.models.glyphs.Scatter", {"size": -1.0, "marker": "zzz"}, {"fill_alpha": 0.5}))
def test_generated_construction(case: tuple[str, dict[str, Any], dict[str, Any] | None]) -> None:
    name, kwargs, theme = case
    built: list[bool] = []

    def observe() -> list[Any]:
        observations = construct(BY_NAME[name], kwargs, theme)
        built.append(observations[1][0] == "ok")
        return observations

    differential(observe)
    event("built" if built[0] else "construction raised")
    event("themed" if theme else "default theme")


def build_app(path: str) -> Document:
    target = str(REPO / path)
    handler = ScriptHandler(filename=target) if path.endswith(".py") else DirectoryHandler(filename=target)
    doc = Document()
    handler.modify_document(doc)
    if handler.failed:
        raise AssertionError(f"{path} failed: {handler.error}\n{handler.error_detail}")
    return doc


@pytest.mark.parametrize("path", APPS)
def test_app_documents(path: str) -> None:
    def case() -> list[Any]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            doc = build_app(path)
        return [[(w.category.__name__, str(w.message)) for w in caught], *document_observations(doc)]

    differential(case, settle=True)


# --- the switch itself and the caches' invalidation -------------------------------------------


def _namespaces() -> dict[Any, dict[str, Any]]:
    owners = {owner for owner, _name, _original in construction.patched_attributes()}
    return {owner: dict(vars(owner)) for owner in owners}


def test_install_and_uninstall_restore_bokeh_exactly() -> None:
    with _restoring_switch():
        construction.uninstall()
        before = _namespaces()
        for owner, name, original in construction.patched_attributes():
            assert vars(owner)[name] is original
        construction.install()
        construction.install()  # idempotent
        assert construction.installed()
        for owner, name, original in construction.patched_attributes():
            assert vars(owner)[name] is not original, f"{owner.__name__}.{name} not patched"
        construction.uninstall()
        construction.uninstall()
        assert not construction.installed()
        after = _namespaces()
        assert after.keys() == before.keys()
        for owner, names in before.items():
            assert after[owner].keys() == names.keys(), owner
            changed = [name for name, value in names.items() if after[owner][name] is not value]
            assert changed == [], f"{owner.__name__}: {changed}"
        assert construction._infos == {}


def test_install_refuses_a_foreign_patch(monkeypatch: pytest.MonkeyPatch) -> None:
    with _restoring_switch():
        construction.uninstall()
        monkeypatch.setattr(HasProps, "apply_theme", lambda self, values: None)
        before = _namespaces()
        with pytest.raises(RuntimeError, match="apply_theme"):
            construction.install()
        assert not construction.installed()
        assert all(dict(vars(owner)) == names for owner, names in before.items())


def _fresh_class() -> type[Model]:
    class _Probe(Model):  # leading underscore: Bokeh does not register it
        number = bp.Float(default=1.0)
        words = bp.List(bp.String, default=[])
        label = bp.Nullable(bp.String)
        anything = bp.Any(default={"a": 1})  # a constant default, but mutable: copied on every read
        bad = bp.Float(default="oops")  # invalid: raises whenever it is read with validation on

    return _Probe


def test_probe_class() -> None:
    probe = _fresh_class()
    differential(lambda: construct(probe, {}))
    differential(lambda: construct(probe, {"number": 3, "bad": 2.0, "words": ["x"]}))


def test_defaults_read_without_validation_are_not_trusted_later() -> None:
    probe = _fresh_class()

    def case() -> list[Any]:
        with property_validation(False):
            unchecked = [outcome(lambda: probe().bad), outcome(lambda: probe().number)]
        return [*unchecked, outcome(lambda: probe().bad), outcome(lambda: probe().number)]

    differential(case)


def test_a_replaced_default_is_seen() -> None:
    probe = _fresh_class()

    def case() -> list[Any]:
        results = [state(probe()), probe().number]
        probe.number.property._default = 2.0
        probe.words.property._default = ["x"]
        results += [state(probe()), probe().number, probe().words]
        probe.number.property._default = 1.0
        probe.words.property._default = []
        return results

    differential(case)


def test_a_class_with_its_own_overridden_defaults() -> None:
    class _Custom(Model):
        number = bp.Float(default=1.0)
        current = 5.0

        @classmethod
        def _overridden_defaults(cls) -> dict[str, Any]:
            return {"number": cls.current}

    def case() -> list[Any]:
        results = [_Custom().number]
        _Custom.current = 6.0
        results.append(_Custom().number)
        _Custom.current = 5.0
        return results

    differential(case)


def test_validators_added_later_are_seen() -> None:
    from bokeh.core.validation import warning
    from bokeh.core.validation.warnings import EMPTY_LAYOUT

    probe = _fresh_class()

    def case() -> list[Any]:
        model = probe()
        results = [issues([model])]

        @warning(EMPTY_LAYOUT)
        def _check_added(self: Any) -> str:
            return "added"

        probe._check_added = _check_added  # type: ignore[attr-defined]
        results.append(issues([model]))
        model.__dict__["_check_own"] = _check_added.__get__(model)
        results.append(issues([model]))
        del probe._check_added  # type: ignore[attr-defined]
        del model.__dict__["_check_own"]
        results.append(issues([model]))
        return results

    differential(case)


def test_unset_required_property_raises_the_same() -> None:
    class _Needy(Model):
        needed = bp.Required(bp.Int)

    def case() -> list[Any]:
        model = _Needy()
        return [outcome(lambda: model.needed), outcome(lambda: encoded(model)), state(model)]

    differential(case)
    with _restoring_switch():
        construction.install()
        with pytest.raises(UnsetValueError):
            _Needy().needed  # noqa: B018


def test_a_dead_class_leaves_the_cache() -> None:
    class Transient:
        pass

    key = id(Transient)
    construction._info(Transient)
    assert key in construction._infos
    del Transient
    gc.collect()
    assert key not in construction._infos

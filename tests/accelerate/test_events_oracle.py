"""The event and array paths of `aperture.accelerate.serialization` / `arrays`, Bokeh as the oracle.

What is checked (with `differential` from `test_serialization_oracle`: each scenario runs with
Bokeh's code and with the accelerated one from the same id counter; JSON text, buffers with ids,
exceptions, warnings, id counter, synced models and model internals must agree):

* `_EventSerializer` (synced models as references, their `Ref`s made lazily): generated
  sequences of document changes (roots added and removed, models moved between roots, values set
  to new, synced, removed and no models, `None`) encoded as they happen and in batches; a model
  class with its own `ref` (Bokeh's eager dict is used: every `ref` read happens as with Bokeh).
* `arrays.encode_ndarray` / `encode_bytes`: generated arrays of every dtype kind, byte order,
  shape and layout (0-d, empty, non-contiguous, masked, subclasses), alone, deferred or inline
  (base64), and in `ColumnDataChanged` / `ColumnsStreamed` events; the `simple_ids` setting off
  (uuid ids) and invalid; `make_id`, `BINARY_ARRAY_TYPES` or the ndarray encoder replaced.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from typing import Any

import bokeh.core.serialization as bokeh_serialization
import bokeh.util.serialization as bokeh_ids
import numpy as np
import pytest
from bokeh.core.properties import Int
from bokeh.core.serialization import Serializer
from bokeh.document import Document
from bokeh.models import Column, ColumnDataSource, Div, Slider
from bokeh.plotting import figure
from bokeh.settings import settings
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from aperture.accelerate import arrays
from aperture.accelerate.serialization import FastSerializer, _event_serializer, _EventSerializer
from tests.accelerate.test_serialization_oracle import (  # noqa: F401  (`simple_ids`: autouse fixture)
    Run,
    differential,
    outcomes,
    simple_ids,
)

# -- the lazy references of PATCH-DOC events ---------------------------------------------------------------


def _doc() -> tuple[Document, list[Any]]:
    divs = [Div(text=f"d{i}") for i in range(4)]
    col = Column(children=divs[:2])
    doc = Document()
    doc.add_root(col)
    doc.add_root(Slider(start=0, end=1, value=0, step=0.1))
    return doc, [col, *divs]


OPS = st.lists(
    st.tuples(st.sampled_from(["add", "remove", "children", "title", "text", "batch"]), st.integers(0, 7)),
    min_size=1,
    max_size=12,
)


def _apply(doc: Document, pool: list[Any], op: str, k: int) -> None:
    col = pool[0]
    if op == "add":
        doc.add_root(pool[1 + k % (len(pool) - 1)] if k % 3 else Div(text=f"new{k}"))
    elif op == "remove" and len(doc.roots) > 1:
        doc.remove_root(doc.roots[k % len(doc.roots)])
    elif op == "children":
        picks = [pool[1 + (k + j) % (len(pool) - 1)] for j in range(k % 3)]
        col.children = [*picks, Div(text=f"c{k}")] if k % 2 else picks
    elif op == "title":
        slider = (
            next(m for m in doc.roots if isinstance(m, Slider))
            if any(isinstance(m, Slider) for m in doc.roots)
            else None
        )
        if slider is not None:
            slider.title = None if k % 2 else f"t{k}"
    elif op == "text":
        pool[1 + k % (len(pool) - 1)].text = f"x{k}"


def _events_scenario(ops: list[tuple[str, int]]) -> Any:
    def scenario(run: Run) -> None:
        doc, pool = _doc()
        run.events(doc, [])
        run.document(doc)
        encoding = run.encode_events_as_they_happen(doc)
        roots = lambda: [*doc.roots, *pool]  # noqa: E731
        for op, k in ops:
            if op == "batch":  # several events in one PATCH-DOC
                batch: list[Any] = []
                doc.remove_on_change(encoding)
                doc.on_change(batch.append)
                _apply(doc, pool, "children", k)
                _apply(doc, pool, "add", k + 1)
                _apply(doc, pool, "text", k)
                doc.remove_on_change(batch.append)
                run.events(doc, batch)
                encoding = run.encode_events_as_they_happen(doc)
            else:
                run.do(op, lambda op=op, k=k: _apply(doc, pool, op, k), roots)
        run.document(doc)

    return scenario


@example(ops=[("remove", 0), ("add", 1), ("text", 0)])  # a removed synced model comes back
@example(ops=[("children", 5), ("batch", 3), ("remove", 1), ("batch", 0)])
@example(ops=[("title", 1), ("title", 2)])  # `None` is a value, never a reference
@hsettings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(ops=OPS)
def test_generated_document_changes(ops: list[tuple[str, int]]) -> None:
    record = differential(_events_scenario(ops))
    assert all(outcome[0] == "ok" for outcome in outcomes(record))


def test_event_serializer_is_used_and_answers_like_bokehs_dict() -> None:
    doc, pool = _doc()
    Serializer(references=doc.models.synced_references)  # (nothing synced yet)
    doc.models.flush_synced()
    extra = Div(text="new")
    doc.add_root(extra)
    fast = _event_serializer(doc)
    assert isinstance(fast, _EventSerializer)
    slow = Serializer(references=doc.models.synced_references)
    for obj in [*doc.models, extra, Div(), None, 1.5, "x", pool]:
        assert fast.has_ref(obj) == slow.has_ref(obj)
        assert fast.get_ref(obj) == slow.get_ref(obj)
    assert not fast.has_ref(extra)
    fast.add_ref(extra, extra.ref)
    assert fast.has_ref(extra)
    with pytest.raises(AssertionError):
        fast.add_ref(pool[1], pool[1].ref)  # synced: Bokeh's `add_ref` asserts too


class _OwnRef(Div):
    """A model class with its own `ref`: Bokeh reads every synced model's `ref` up front."""

    reads = 0
    n = Int(0)

    @property
    def ref(self) -> Any:
        type(self).reads += 1
        return {"id": self.id}


class _DictRef(Div):
    """A model class whose `ref` is a plain (unhashable) class attribute."""

    ref = {"id": "shared"}  # type: ignore[assignment]


def test_model_with_a_ref_attribute_uses_bokehs_eager_references() -> None:
    def scenario(run: Run) -> None:
        doc, pool = _doc()
        odd = _DictRef(text="odd")
        doc.add_root(odd)
        run.document(doc)
        assert _event_serializer(doc) is None
        run.encode_events_as_they_happen(doc)
        run.do("set", lambda: setattr(odd, "text", "t"), lambda: list(doc.roots))
        run.do("children", lambda: setattr(pool[0], "children", [odd, pool[1]]), lambda: list(doc.roots))

    differential(scenario)


def test_model_with_its_own_ref_uses_bokehs_eager_references() -> None:
    reads: list[int] = []

    def scenario(run: Run) -> None:
        _OwnRef.reads = 0
        doc, pool = _doc()
        own = _OwnRef(text="own")
        doc.add_root(own)
        run.document(doc)
        assert _event_serializer(doc) is None
        run.encode_events_as_they_happen(doc)
        run.do("set", lambda: setattr(own, "n", 3), lambda: list(doc.roots))
        run.do("children", lambda: setattr(pool[0], "children", [own]), lambda: list(doc.roots))
        reads.append(_OwnRef.reads)

    differential(scenario)
    assert reads[0] == reads[1] > 0


# -- arrays and buffers ------------------------------------------------------------------------------------

DTYPES = st.one_of(
    hnp.boolean_dtypes(),
    hnp.integer_dtypes(endianness="="),
    hnp.unsigned_integer_dtypes(endianness="="),
    hnp.floating_dtypes(endianness="="),
    hnp.integer_dtypes(endianness=">"),
    hnp.floating_dtypes(endianness=">"),
    hnp.datetime64_dtypes(endianness="="),
    hnp.timedelta64_dtypes(endianness="="),
    hnp.unicode_string_dtypes(endianness="="),
)


@st.composite
def ndarrays(draw: st.DrawFn) -> Any:
    dtype = draw(DTYPES)
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
    array = draw(hnp.arrays(dtype, shape))
    layout = draw(st.sampled_from(["plain", "transposed", "strided", "masked", "fortran", "readonly"]))
    if layout == "transposed":
        array = array.T
    elif layout == "strided" and array.ndim:
        array = array[::2]
    elif layout == "masked":
        array = np.ma.masked_array(array, mask=np.zeros(array.shape, dtype=bool))
    elif layout == "fortran":
        array = np.asfortranarray(array)
    elif layout == "readonly":
        array = array.copy()
        array.flags.writeable = False
    return array


def _layout(buffers: list[Any]) -> list[Any]:
    """What a buffer's bytes do not show: the kind of object and its memory layout."""
    views = [(type(b.data).__name__, memoryview(b.data)) for b in buffers]
    return [(kind, v.format, v.shape, v.strides, v.c_contiguous, v.readonly) for kind, v in views]


def _encode_alone(array: Any, deferred: bool) -> Any:
    def scenario(run: Run) -> None:
        kind = FastSerializer if run.fast else Serializer
        result = run.step(
            "array", lambda: kind(deferred=deferred).serialize([array, {"a": array}, array]), lambda: []
        )
        run.record.append(("layout", _layout(result.buffers) if result is not None else None))

    return scenario


@example(array=np.arange(6.0), deferred=True)
@example(array=np.arange(6.0)[::2], deferred=True)
@example(array=np.arange(6, dtype=np.int64), deferred=False)
@example(array=np.float64(2.5) * np.ones(()), deferred=True)
@example(array=np.zeros((2, 0), dtype=np.float32), deferred=True)
@example(array=np.array(["a", "bc"]), deferred=True)
@example(array=np.array([1.0, np.nan, np.inf]).astype(">f8"), deferred=True)
@example(array=np.arange(4, dtype=np.uint8).reshape(2, 2).T, deferred=False)
@hsettings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(array=ndarrays(), deferred=st.booleans())
def test_generated_arrays(array: Any, deferred: bool) -> None:
    differential(_encode_alone(array, deferred))


def test_array_subclasses_and_objects() -> None:
    class Sub(np.ndarray):
        pass

    for array in [
        np.arange(4.0).view(Sub),
        np.ma.masked_array([1.0, 2.0], mask=[False, True]),
        np.array([1, "a", None], dtype=object),
        np.array([1 + 2j]),
        np.array([2**40, 1], dtype=np.int64),
        np.array([2**63], dtype=np.uint64),
        np.array(["2020-01-01"], dtype="datetime64[D]"),
    ]:
        differential(_encode_alone(array, True))


def _cds_scenario(columns: dict[str, Any], stream: dict[str, Any]) -> Any:
    def scenario(run: Run) -> None:
        source = ColumnDataSource(data=columns)
        plot = figure()
        plot.scatter("x", "y", source=source)
        doc = Document()
        doc.add_root(plot)
        run.document(doc)
        run.encode_events_as_they_happen(doc)
        roots = lambda: [plot]  # noqa: E731
        run.do("data", lambda: setattr(source, "data", dict(columns)), roots)
        run.do("stream", lambda: source.stream(stream, rollover=5), roots)
        run.do("patch", lambda: source.patch({"x": [(0, columns["x"][-1])]}), roots)

    return scenario


@hsettings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(
    dtype=st.sampled_from([np.float64, np.float32, np.int32, np.int64, np.uint8, np.bool_]),
    n=st.integers(1, 8),
    listy=st.booleans(),
)
def test_column_data_events(dtype: Any, n: int, listy: bool) -> None:
    x = np.arange(n).astype(dtype)
    y = np.linspace(0, 1, n)
    stream = {"x": x[:2].tolist() if listy else x[:2], "y": y[:2].tolist() if listy else y[:2]}
    differential(_cds_scenario({"x": x, "y": y}, stream))


def test_the_bench_apps_events() -> None:
    from tests.accelerate.test_serialization_oracle import build_app, drive

    def scenario(run: Run) -> None:
        random.seed(5)  # the stream app draws its points from `random`
        for path in ("bench/apps/sliders.py", "bench/apps/stream.py"):
            doc, _ = build_app(path)
            run.document(doc)
            run.encode_events_as_they_happen(doc)
            for _ in range(3):
                run.do("drive", lambda doc=doc: drive(doc), lambda doc=doc: list(doc.roots))

    differential(scenario)


@pytest.fixture
def uuid_ids(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """`simple_ids` off, with reproducible "uuids" (the two runs must make the same ones)."""
    made: list[str] = []

    def fake() -> str:
        made.append(str(uuid.UUID(int=len(made) + 1)))
        return made[-1]

    monkeypatch.setattr(bokeh_ids, "make_globally_unique_id", fake)
    settings.simple_ids.set_value(False)
    try:
        yield made
    finally:
        settings.simple_ids.set_value(True)


def test_simple_ids_off(uuid_ids: list[str]) -> None:
    def scenario(run: Run) -> None:
        uuid_ids.clear()
        _encode_alone(np.arange(3.0), True)(run)
        _cds_scenario({"x": np.arange(3.0), "y": np.ones(3)}, {"x": np.ones(1), "y": np.ones(1)})(run)
        run.record.append(("uuids", list(uuid_ids)))

    differential(scenario)
    assert uuid_ids


def test_invalid_simple_ids_setting_raises_as_bokeh(monkeypatch: pytest.MonkeyPatch) -> None:
    settings.simple_ids.unset_value()
    monkeypatch.setenv("BOKEH_SIMPLE_IDS", "perhaps")
    try:
        record = differential(_encode_alone(np.arange(3.0), True))
    finally:
        settings.simple_ids.set_value(True)
    assert record[0][1][0] == "raised"


def test_replaced_make_id_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def make_id() -> str:
        calls.append(1)
        return f"mine{len(calls)}"

    monkeypatch.setattr(bokeh_serialization, "make_id", make_id)

    def scenario(run: Run) -> None:
        calls.clear()
        _encode_alone(np.arange(3.0), True)(run)
        run.step("bytes", lambda: (FastSerializer if run.fast else Serializer)().serialize(b"ab"), lambda: [])

    record = differential(scenario)
    assert "mine" in repr(record)


def test_binary_types_and_ndarray_encoder_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bokeh_ids, "BINARY_ARRAY_TYPES", {np.dtype(np.int32)})
    differential(_encode_alone(np.arange(3.0), True))  # float64 is no longer binary: a list
    monkeypatch.setitem(Serializer._encoders, np.ndarray, lambda obj, serializer: {"mine": len(obj)})
    record = differential(_encode_alone(np.arange(3, dtype=np.int32), True))
    assert "mine" in repr(record)


def test_dtype_names_are_bokehs() -> None:
    for dtype in bokeh_ids.BINARY_ARRAY_TYPES:
        array = np.zeros(2, dtype=dtype)
        rep = FastSerializer().encode(array)
        assert rep == Serializer().encode(array) | {"array": rep["array"]}
        assert rep["dtype"] == dtype.name
    assert arrays.encode_ndarray(FastSerializer(), np.zeros(2, dtype=np.int64)) is NotImplemented


# -- lists of plain values -------------------------------------------------------------------------------

SAFE = 2**53 - 1
SCALARS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([SAFE, SAFE + 1, -SAFE, -SAFE - 1, 0, -0.0, True, False, None]),
    st.text(max_size=3),
    st.builds(np.float64, st.floats()),
    st.builds(np.int32, st.integers(-(2**31), 2**31 - 1)),
)


class _Float(float):
    pass


class _Int(int):
    pass


@example(items=[1.0, float("nan"), float("inf"), -float("inf"), SAFE, SAFE + 1, -SAFE, -SAFE - 1])
@example(items=[_Float(1.5), _Int(3), True, "a", None, [1, [2.5, "b"]], (1, 2)])
@hsettings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(items=st.lists(st.one_of(SCALARS, st.lists(SCALARS, max_size=3)), max_size=12))
def test_generated_lists(items: list[Any]) -> None:
    def scenario(run: Run) -> None:
        kind = FastSerializer if run.fast else Serializer
        run.step("list", lambda: kind().serialize([items, {"k": items}]), lambda: [])
        source = ColumnDataSource(data={"x": [0.5], "y": ["a"]})
        doc = Document()
        doc.add_root(source)
        run.document(doc)
        run.encode_events_as_they_happen(doc)
        run.do("stream", lambda: source.stream({"x": items, "y": items}), lambda: [source])

    differential(scenario)


def test_lists_with_models_and_replaced_encoders(monkeypatch: pytest.MonkeyPatch) -> None:
    def scenario(run: Run) -> None:
        doc, pool = _doc()
        run.document(doc)
        run.encode_events_as_they_happen(doc)
        run.do(
            "children", lambda: setattr(pool[0], "children", [pool[1], Div(text="n"), pool[1]]), lambda: []
        )
        kind = FastSerializer if run.fast else Serializer
        run.step("list", lambda: kind().serialize([1.5, pool[2], [pool[2], 3, "s"]]), lambda: [])

    differential(scenario)
    monkeypatch.setitem(Serializer._encoders, float, lambda obj, serializer: {"float": repr(obj)})
    monkeypatch.setitem(Serializer._encoders, str, lambda obj, serializer: {"str": obj})
    record = differential(scenario)
    assert '"float"' in repr(record) and '"str"' in repr(record)

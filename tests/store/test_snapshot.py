"""`store.snapshot` against Bokeh as the oracle: a restored document serializes exactly like the original.

In process, no Redis: a document is built by an app function with a session's id source,
changed by generated sequences of operations (widget values, `stream` with and without
rollover, `patch`, new data, models added to a layout, roots added and removed, the title),
flushed at generated points into a dict that plays the store's hash (HSET/HDEL), then a second
build of the same session gets the stored fields. Its `Document.to_json()` must equal the
original's (the document's own config model aside, which no app builds).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from bokeh.document import Document
from bokeh.layouts import column
from bokeh.models import ColumnDataSource, Div, Select, Slider, TextInput
from bokeh.plotting import figure
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aperture.apps import curdoc, model_ids
from aperture.store.snapshot import (
    RESTORING,
    Baseline,
    ChangeLog,
    RestoreMismatch,
    StoredState,
    baseline_of,
    restore,
)

curdoc.install()
model_ids.install()

ROUTE = "/app"
CALLBACK_RUNS: list[tuple[str, Any]] = []


def app(doc: Document) -> None:
    source = ColumnDataSource(data={"x": np.arange(5.0), "y": np.arange(5.0) ** 2}, name="source")
    plot = figure(height=200, width=300, title="plot", name="plot")
    plot.line("x", "y", source=source)
    slider = Slider(start=0, end=10, value=1, step=1, title="n", name="slider")
    select = Select(options=["a", "b", "c"], value="a", name="select")
    text = TextInput(value="hello", name="text")
    mirror = Div(text="1", name="mirror")

    def mirror_slider(attr: str, old: Any, new: Any) -> None:
        CALLBACK_RUNS.append(("slider", new))
        mirror.text = str(new)

    slider.on_change("value", mirror_slider)
    doc.add_root(column(slider, select, text, mirror, plot, name="layout"))
    doc.title = "built"


def build(session_id: str, make: Any = app) -> tuple[Document, Baseline]:
    doc = Document()
    model_ids.attach(doc, model_ids.IdSource(ROUTE, session_id))
    with curdoc.patched(doc):
        make(doc)
    return doc, baseline_of(doc)


def comparable(doc: Document) -> str:
    data = doc.to_json(deferred=False)
    data.pop("config", None)  # the Document's own settings model is made by Document(), not by the app
    return json.dumps(data, sort_keys=True)


class Hash:
    """The store's per-session hash, as the keeper writes it."""

    def __init__(self) -> None:
        self.fields: dict[str, bytes] = {}

    def apply(self, log: ChangeLog, doc: Document) -> None:
        delta = log.collect(doc)
        self.fields.update(delta.fields)
        for name in delta.removed:
            self.fields.pop(name, None)

    def state(self, fingerprint: str) -> StoredState:
        return StoredState.from_fields(fingerprint, dict(self.fields))


def by_name(doc: Document, name: str) -> Any:
    return doc.select_one({"name": name})


def operate(doc: Document, op: tuple[str, Any]) -> None:
    kind, value = op
    source = by_name(doc, "source")
    if kind == "slider":
        by_name(doc, "slider").value = value
    elif kind == "select":
        by_name(doc, "select").value = value
    elif kind == "text":
        by_name(doc, "text").value = value
    elif kind == "stream":
        rows, rollover = value
        source.stream({"x": [float(i) for i in range(rows)], "y": [0.5] * rows}, rollover=rollover)
    elif kind == "patch":
        if len(source.data["y"]):
            source.patch({"y": [(0, float(value))]})
    elif kind == "data":
        source.data = {"x": np.linspace(0, 1, value), "y": np.ones(value)}
    elif kind == "add_div":
        by_name(doc, "layout").children.append(Div(text=f"added {value}"))
    elif kind == "drop_last":
        layout = by_name(doc, "layout")
        if len(layout.children) > 5:
            layout.children.pop()
    elif kind == "title":
        doc.title = value
    elif kind == "add_root":
        doc.add_root(Div(text=f"root {value}"))
    elif kind == "remove_root":
        extra = [r for r in doc.roots if r.name != "layout"]
        if extra:
            doc.remove_root(extra[0])


OPERATIONS = st.one_of(
    st.tuples(st.just("slider"), st.integers(0, 10)),
    st.tuples(st.just("select"), st.sampled_from(["a", "b", "c"])),
    st.tuples(st.just("text"), st.text(max_size=20)),
    st.tuples(st.just("stream"), st.tuples(st.integers(1, 4), st.sampled_from([None, 3, 8]))),
    st.tuples(st.just("patch"), st.floats(-1e6, 1e6, allow_nan=False)),
    st.tuples(st.just("data"), st.integers(0, 6)),
    st.tuples(st.just("add_div"), st.integers(0, 99)),
    st.tuples(st.just("drop_last"), st.none()),
    st.tuples(st.just("title"), st.text(max_size=10)),
    st.tuples(st.just("add_root"), st.integers(0, 99)),
    st.tuples(st.just("remove_root"), st.none()),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.tuples(OPERATIONS, st.booleans()), max_size=12), session=st.sampled_from("abc"))
def test_restored_document_serializes_exactly_like_the_original(steps, session):
    doc, baseline = build(f"session-{session}")
    log = ChangeLog(baseline)
    doc.callbacks.on_change(log.record)
    store = Hash()
    with curdoc.patched(doc):
        for op, flush in steps:
            operate(doc, op)
            if flush:
                store.apply(log, doc)
    store.apply(log, doc)

    rebuilt, rebuilt_baseline = build(f"session-{session}")
    ids = model_ids.source_of(rebuilt)
    state = store.state(baseline.fingerprint)
    assert ids is not None
    ids.skip_past(max([0, *filter(None, map(ids.number_of, state.models))]))
    with curdoc.patched(rebuilt):
        restore(rebuilt, rebuilt_baseline, state)
    assert comparable(rebuilt) == comparable(doc)


def test_a_rebuild_gives_the_models_the_same_ids_and_other_sessions_other_ids():
    first, base1 = build("one")
    again, base2 = build("one")
    other, base3 = build("two")
    assert sorted(m.id for m in first.models) == sorted(m.id for m in again.models)
    assert base1 == base2
    assert not {m.id for m in first.models} & {m.id for m in other.models}
    assert base1.fingerprint != base3.fingerprint


def test_outside_a_session_bokeh_numbers_models_as_usual():
    assert Div().id.startswith("p") and "-" not in Div().id


def test_stored_values_are_applied_like_a_clients_change_then_exactly():
    doc, baseline = build("callbacks")
    log = ChangeLog(baseline)
    doc.callbacks.on_change(log.record)
    with curdoc.patched(doc):
        by_name(doc, "slider").value = 7
        by_name(doc, "mirror").text = "changed by hand"  # differs from what the callback makes
    store = Hash()
    store.apply(log, doc)
    rebuilt, rebuilt_baseline = build("callbacks")
    CALLBACK_RUNS.clear()
    with curdoc.patched(rebuilt):
        restore(rebuilt, rebuilt_baseline, store.state(baseline.fingerprint))
    assert CALLBACK_RUNS == [("slider", 7)]  # the app's on_change ran for the restored value
    assert by_name(rebuilt, "mirror").text == "changed by hand"  # and the stored value won
    assert comparable(rebuilt) == comparable(doc)


def test_only_what_changed_is_stored():
    doc, baseline = build("small")
    log = ChangeLog(baseline)
    doc.callbacks.on_change(log.record)
    with curdoc.patched(doc):
        by_name(doc, "select").value = "b"
    delta = log.collect(doc)
    assert list(delta.fields) == [f"m:{by_name(doc, 'select').id}"]
    assert json.loads(delta.fields[f"m:{by_name(doc, 'select').id}"])["a"] == {"value": "b"}
    assert not log.collect(doc)  # nothing new since


def test_a_different_structure_is_refused_without_touching_the_document():
    def other_app(doc: Document) -> None:
        app(doc)
        doc.add_root(Div(text="one more"))

    doc, baseline = build("shape")
    log = ChangeLog(baseline)
    doc.callbacks.on_change(log.record)
    with curdoc.patched(doc):
        by_name(doc, "slider").value = 3
    store = Hash()
    store.apply(log, doc)
    rebuilt, rebuilt_baseline = build("shape", other_app)
    before = comparable(rebuilt)
    with pytest.raises(RestoreMismatch):
        restore(rebuilt, rebuilt_baseline, store.state(baseline.fingerprint))
    assert comparable(rebuilt) == before


def test_models_dropped_after_being_stored_are_deleted_from_the_store():
    doc, baseline = build("dropped")
    log = ChangeLog(baseline)
    doc.callbacks.on_change(log.record)
    store = Hash()
    with curdoc.patched(doc):
        doc.add_root(Div(text="temporary"))
        store.apply(log, doc)
        added = [r for r in doc.roots if r.name != "layout"][0]
        assert f"m:{added.id}" in store.fields
        doc.remove_root(added)
        store.apply(log, doc)
    assert f"m:{added.id}" not in store.fields


def test_restoring_uses_a_setter_that_is_no_connection():
    assert "restoring" in repr(RESTORING)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    before=st.lists(OPERATIONS, max_size=8),
    after=st.lists(OPERATIONS, max_size=8),
)
def test_a_taken_over_session_keeps_its_earlier_changes_through_the_next_takeover(before, after):
    """Restored on a second process, changed there, restored on a third: nothing of either is lost."""
    doc, baseline = build("generations")
    log = ChangeLog(baseline)
    doc.callbacks.on_change(log.record)
    store = Hash()
    with curdoc.patched(doc):
        for op in before:
            operate(doc, op)
    store.apply(log, doc)

    second, second_baseline = build("generations")  # as the registry does it: log first, then restore
    state = store.state(baseline.fingerprint)
    ids = model_ids.source_of(second)
    assert ids is not None
    ids.skip_past(max([0, *filter(None, map(ids.number_of, state.models))]))
    second_log = ChangeLog(second_baseline)
    second.callbacks.on_change(second_log.record)
    with curdoc.patched(second):
        restore(second, second_baseline, state)
        second_log.adopt_stored(state.models)
        for op in after:
            operate(second, op)
    store.apply(second_log, second)

    third, third_baseline = build("generations")
    state = store.state(baseline.fingerprint)
    ids = model_ids.source_of(third)
    assert ids is not None
    ids.skip_past(max([0, *filter(None, map(ids.number_of, state.models))]))
    with curdoc.patched(third):
        restore(third, third_baseline, state)
    assert comparable(third) == comparable(second)

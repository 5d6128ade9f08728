"""Raises, where `?at=` says, the kind `?kind=` names; otherwise slider -> div like tests/apps/demo.py.

Places: build (while the page is built), periodic, periodic_async, timeout, next_tick, nolock
(a without_document_lock next-tick callback), on_change (the 'trap' slider), on_event (the
'button'), doc_destroyed (the document's on_session_destroyed), connection_lost.
"""

import asyncio

from bokeh.document import without_document_lock
from bokeh.events import ButtonClick, ConnectionLost
from bokeh.io import curdoc
from bokeh.layouts import column
from bokeh.models import Button, Div, Slider
from raising import plan, stop

doc = curdoc()
arguments = doc.session_context.request.arguments
slider = Slider(start=0, end=1000, value=1, step=1, name="slider", title="s")
div = Div(text="value=1", name="div")
trap = Slider(start=0, end=1000, value=1, step=1, name="trap", title="trap")
button = Button(label="stop", name="button")
runs = Div(text="0", name="runs")  # how often a timer callback ran (it raises after counting)


def changed(attr, old, new):
    div.text = f"value={new}"


slider.on_change("value", changed)


def counted():
    runs.text = str(int(runs.text) + 1)


def failing():
    counted()
    stop(kind)


async def failing_async():
    counted()
    await asyncio.sleep(0)
    stop(kind)


@without_document_lock
async def failing_unlocked():
    await asyncio.sleep(0)
    stop(kind)


places, kind = plan(arguments)
if "build" in places:
    stop(kind)
if "periodic" in places:
    doc.add_periodic_callback(failing, 50)
if "periodic_async" in places:
    doc.add_periodic_callback(failing_async, 50)
if "timeout" in places:
    doc.add_timeout_callback(failing, 50)
if "next_tick" in places:
    doc.add_next_tick_callback(failing)
if "nolock" in places:
    doc.add_next_tick_callback(failing_unlocked)
if "on_change" in places:
    trap.on_change("value", lambda attr, old, new: stop(kind))
if "on_event" in places:
    button.on_event(ButtonClick, lambda event: stop(kind))
if "doc_destroyed" in places:
    doc.on_session_destroyed(lambda session_context: stop(kind))
if "connection_lost" in places:
    doc.on_event(ConnectionLost, lambda event: stop(kind))

# Last: a model's on_event callbacks count only if registered before it joins the document.
doc.add_root(column(slider, div, trap, button, runs, name="layout"))
doc.title = "exits"

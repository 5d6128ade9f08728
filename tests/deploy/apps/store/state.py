"""A Bokeh app whose state lives in its document and changes only through the page and callbacks.

Widgets the user changes in the page (``slider``, ``select``, ``text``); buttons whose Python
callbacks append to the data source with ``stream`` (``stream``), change it with ``patch``
(``patch``) and add a ``Div`` to a column (``add``); a ``ping`` text input whose callback
answers in ``pong`` (``<value> pid=<pid>``): a round trip through Python that changes nothing
else. Every other callback writes ``status`` (``<what> pid=<pid>``), and ``summary`` shows
what Python believes the widgets hold, so a test can tell that the serving process knows
restored values (``summary`` is recomputed from the Python-side models on every change).
Nothing is kept in module globals: what a rebuilt session knows comes from its document.
"""

import os

from bokeh.io import curdoc
from bokeh.layouts import column, row
from bokeh.models import Button, ColumnDataSource, Div, Select, Slider, TextInput
from bokeh.plotting import figure

PID = os.getpid()
doc = curdoc()

slider = Slider(start=0, end=100, step=1, value=10, title="level", name="slider")
select = Select(options=["red", "green", "blue"], value="red", title="colour", name="select")
text = TextInput(value="hello", title="label", name="text")
summary = Div(text="", name="summary")
status = Div(text=f"built pid={PID}", name="status")
built = Div(text=f"built pid={PID}", name="built")
ping = TextInput(value="", title="ping", name="ping")
pong = Div(text="", name="pong")
source = ColumnDataSource(data={"x": [0, 1, 2], "y": [5, 6, 7]}, name="source")
extras = column(Div(text="extras:", name="extras-title"), name="extras")
stream_button = Button(label="stream", name="stream")
patch_button = Button(label="patch", name="patch")
add_button = Button(label="add", name="add")

plot = figure(width=300, height=200, toolbar_location=None, name="plot")
plot.line("x", "y", source=source, line_width=2)


def summarize() -> None:
    summary.text = f"{slider.value}|{select.value}|{text.value}|{len(source.data['x'])}"


def changed(what):
    def callback(attr, old, new):
        status.text = f"{what}={new} pid={os.getpid()}"
        summarize()

    return callback


def on_stream() -> None:
    n = len(source.data["x"])
    source.stream({"x": [n], "y": [n * 10]})
    status.text = f"stream {n} pid={os.getpid()}"
    summarize()


def on_patch() -> None:
    first = source.data["y"][0]
    source.patch({"y": [(0, first + 100)]})
    status.text = f"patch {first + 100} pid={os.getpid()}"


def on_add() -> None:
    n = len(extras.children)
    extras.children.append(Div(text=f"added {n} by pid={os.getpid()}", name=f"added-{n}"))
    status.text = f"add {n} pid={os.getpid()}"


def on_ping(attr, old, new) -> None:
    pong.text = f"{new} pid={os.getpid()}"


slider.on_change("value", changed("slider"))
select.on_change("value", changed("select"))
text.on_change("value", changed("text"))
ping.on_change("value", on_ping)
stream_button.on_click(on_stream)
patch_button.on_click(on_patch)
add_button.on_click(on_add)
summarize()

doc.add_root(
    column(
        row(slider, select, text),
        row(stream_button, patch_button, add_button, ping),
        summary,
        status,
        built,
        pong,
        extras,
        plot,
        name="layout",
    )
)
doc.title = "store"

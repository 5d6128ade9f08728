"""A session with every kind of state a Bokeh app builds up, for the session-store tests.

Widgets a client moves (``amplitude`` slider, ``kind`` select, ``label`` text input) drive Python
callbacks that replace ``curve.data`` and the plot title. Buttons run callbacks that append to
``log`` with ``stream`` (no rollover), ``patch`` ``cells``, add a new plot and a Div to the
``panel`` column (models made after the build), retitle the document and add a root. A periodic
callback streams into ``ticks`` (rollover 5) and patches ``cells`` until ``ticks`` holds the
number the ``target`` slider asks for, so the document is still once the target is reached.
Every callback writes its process id into the ``pid`` Div.
"""

import os

import numpy as np
from bokeh.io import curdoc
from bokeh.layouts import column, row
from bokeh.models import Button, ColumnDataSource, DataTable, Div, Select, Slider, TableColumn, TextInput
from bokeh.plotting import figure

X = np.linspace(0, 2 * np.pi, 50)
SHAPES = {"sine": np.sin, "cosine": np.cos}

curve = ColumnDataSource(data={"x": X, "y": np.sin(X)}, name="curve")
log = ColumnDataSource(data={"n": [], "who": []}, name="log")
ticks = ColumnDataSource(data={"n": [0], "value": [0.0]}, name="ticks")
cells = ColumnDataSource(data={"cell": ["a", "b", "c", "d"], "v": [0, 0, 0, 0]}, name="cells")

plot = figure(height=250, width=400, title="sine", tools="pan,reset", name="plot")
plot.line("x", "y", source=curve, line_width=2)
plot.scatter("n", "value", source=ticks, size=6)

amplitude = Slider(title="amplitude", value=1.0, start=0.0, end=5.0, step=0.1, name="amplitude")
kind = Select(title="shape", value="sine", options=list(SHAPES), name="kind")
label = TextInput(title="title", value="sine", name="label")
target = Slider(title="ticks", value=0, start=0, end=100, step=1, name="target")

add = Button(label="Add a row", name="add")
patch = Button(label="Patch a cell", name="patch")
grow = Button(label="Add a plot", name="grow")
retitle = Button(label="Retitle", name="retitle")
extra = Button(label="Add a root", name="extra")

log_table = DataTable(source=log, columns=[TableColumn(field="n"), TableColumn(field="who")], height=120)
cells_table = DataTable(source=cells, columns=[TableColumn(field="cell"), TableColumn(field="v")], height=120)
pid = Div(text="pid=none", name="pid")
panel = column(Div(text="plots added by callbacks:"), name="panel")


def mark():
    pid.text = f"pid={os.getpid()}"


def update_curve(attr, old, new):
    curve.data = {"x": X, "y": amplitude.value * SHAPES[kind.value](X)}
    mark()


def update_title(attr, old, new):
    plot.title.text = new
    mark()


def add_row():
    n = len(log.data["n"]) + 1
    log.stream({"n": [n], "who": [f"row {n}"]})
    mark()


def patch_cell():
    cells.patch({"v": [(0, cells.data["v"][0] + 10)]})
    mark()


def add_plot():
    n = len(panel.children)
    extra_plot = figure(height=150, width=300, title=f"added {n}", name=f"added-{n}")
    extra_plot.line(X, np.cos(n * X), line_color="firebrick")
    panel.children = [*panel.children, extra_plot, Div(text=f"plot {n} added", name=f"note-{n}")]
    mark()


def rename():
    curdoc().title = f"{curdoc().title} again"
    mark()


def add_root():
    curdoc().add_root(Div(text=f"root added by pid {os.getpid()}", name=f"root-{len(curdoc().roots)}"))
    mark()


def tick():
    last = ticks.data["n"][-1]
    if last >= target.value:
        return
    ticks.stream({"n": [last + 1], "value": [float(last + 1) ** 0.5]}, rollover=5)
    cells.patch({"v": [(1 + last % 3, last + 1)]})
    mark()


for widget in (amplitude, kind):
    widget.on_change("value", update_curve)
label.on_change("value", update_title)
add.on_click(add_row)
patch.on_click(patch_cell)
grow.on_click(add_plot)
retitle.on_click(rename)
extra.on_click(add_root)

doc = curdoc()
controls = column(amplitude, kind, label, target, row(add, patch, grow, retitle, extra), pid)
doc.add_root(row(controls, column(plot, log_table, cells_table, panel), name="layout"))
doc.add_periodic_callback(tick, 50)
doc.title = "State"

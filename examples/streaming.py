"""A random walk streamed into a line plot by a periodic callback.

The server appends one point every ``PERIOD_MS`` with ``source.stream(...,
rollover=ROLLOVER)``, so the browser keeps at most ``ROLLOVER`` points. The
button's Python callback pauses or resumes the walk and relabels the button.

Serve it with ``aperture serve examples/streaming.py`` (or ``bokeh serve``).

Stable names for tests: ``source`` (columns ``step``, ``value``), ``plot``,
``toggle`` (the button, labelled "Pause" while streaming, "Resume" while
paused) and ``status`` (a Div saying "streaming" or "paused").
"""

import random

from bokeh.io import curdoc
from bokeh.layouts import column, row
from bokeh.models import Button, ColumnDataSource, Div
from bokeh.plotting import figure

PERIOD_MS = 100
ROLLOVER = 300

source = ColumnDataSource(data={"step": [0], "value": [0.0]}, name="source")

plot = figure(
    height=350,
    width=700,
    title="random walk",
    x_axis_label="step",
    tools="pan,reset,wheel_zoom",
    name="plot",
)
plot.line("step", "value", source=source, line_width=2)

toggle = Button(label="Pause", button_type="warning", name="toggle")
status = Div(text="streaming", name="status")

# One walk per session: this script runs once for every new document.
walk = {"step": 0, "value": 0.0, "paused": False}


def tick():
    if walk["paused"]:
        return
    walk["step"] += 1
    walk["value"] += random.gauss(0.0, 1.0)
    source.stream({"step": [walk["step"]], "value": [walk["value"]]}, rollover=ROLLOVER)


def on_toggle():
    walk["paused"] = not walk["paused"]
    toggle.label = "Resume" if walk["paused"] else "Pause"
    toggle.button_type = "success" if walk["paused"] else "warning"
    status.text = "paused" if walk["paused"] else "streaming"


toggle.on_click(on_toggle)

doc = curdoc()
doc.add_root(column(row(toggle, status), plot, name="layout"))
doc.add_periodic_callback(tick, PERIOD_MS)
doc.title = "Streaming"

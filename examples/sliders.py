"""The classic sliders demo: a sine wave whose shape four sliders control.

Every widget change runs a Python callback on the server, which recomputes the
curve and replaces ``source.data``; the browser only redraws what it is sent.

Serve it with ``aperture serve examples/sliders.py`` (or ``bokeh serve``) and
open http://localhost:5006/sliders.

Models carry stable ``name=`` attributes (``source``, ``plot``, ``title``,
``offset``, ``amplitude``, ``phase``, ``frequency``) so tests can find them
with ``Bokeh.documents[0].get_model_by_name(...)``.
"""

import numpy as np
from bokeh.io import curdoc
from bokeh.layouts import column, row
from bokeh.models import ColumnDataSource, Slider, TextInput
from bokeh.plotting import figure

N = 200
X = np.linspace(0, 4 * np.pi, N)

source = ColumnDataSource(data={"x": X, "y": np.sin(X)}, name="source")

plot = figure(
    height=400,
    width=400,
    title="my sine wave",
    tools="crosshair,pan,reset,save,wheel_zoom",
    x_range=(0, 4 * np.pi),
    y_range=(-2.5, 2.5),
    name="plot",
)
plot.line("x", "y", source=source, line_width=3, line_alpha=0.6)

title = TextInput(title="title", value="my sine wave", name="title")
offset = Slider(title="offset", value=0.0, start=-5.0, end=5.0, step=0.1, name="offset")
amplitude = Slider(title="amplitude", value=1.0, start=-5.0, end=5.0, step=0.1, name="amplitude")
phase = Slider(title="phase", value=0.0, start=0.0, end=2 * np.pi, step=0.1, name="phase")
frequency = Slider(title="frequency", value=1.0, start=0.1, end=5.1, step=0.1, name="frequency")


def update_title(attr, old, new):
    plot.title.text = title.value


def update_data(attr, old, new):
    y = amplitude.value * np.sin(frequency.value * X + phase.value) + offset.value
    source.data = {"x": X, "y": y}


title.on_change("value", update_title)
for slider in (offset, amplitude, phase, frequency):
    slider.on_change("value", update_data)

inputs = column(title, offset, amplitude, phase, frequency, name="inputs")

curdoc().add_root(row(inputs, plot, width=800, name="layout"))
curdoc().title = "Sliders"

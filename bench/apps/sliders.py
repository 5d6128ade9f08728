"""Sliders app (S1, S2, S4, S6, S9/S10 probes): a line plot of a 200-point sine wave and four sliders.

Every slider change recomputes the whole ColumnDataSource (`source.data = ...`), so one slider
PATCH-DOC from a client yields one ColumnDataChanged PATCH-DOC (2 float64 buffers) and then the OK.
"""

import numpy as np
from bokeh.io import curdoc
from bokeh.layouts import column, row
from bokeh.models import ColumnDataSource, Slider
from bokeh.plotting import figure

N = 200
x = np.linspace(0, 4 * np.pi, N)
source = ColumnDataSource(data=dict(x=x, y=np.sin(x)), name="source")

plot = figure(height=400, width=400, title="my sine wave", x_range=[0, 4 * np.pi], y_range=[-2.5, 2.5])
plot.line("x", "y", source=source, line_width=3, line_alpha=0.6)

offset = Slider(title="offset", value=0.0, start=-5.0, end=5.0, step=0.1, name="offset")
amplitude = Slider(title="amplitude", value=1.0, start=-5.0, end=5.0, step=0.1, name="amplitude")
phase = Slider(title="phase", value=0.0, start=0.0, end=2 * np.pi, step=0.1, name="phase")
freq = Slider(title="frequency", value=1.0, start=0.1, end=5.1, step=0.1, name="freq")


def update(attr, old, new):
    y = amplitude.value * np.sin(freq.value * x + phase.value) + offset.value
    source.data = dict(x=x, y=y)


for w in (offset, amplitude, phase, freq):
    w.on_change("value", update)

curdoc().add_root(row(column(offset, amplitude, phase, freq), plot, width=800))
curdoc().title = "Sliders"

"""A sliders-like session (figure, slider with a Python callback, periodic callback) that, once
built, prints how many Bokeh documents and sliders this process holds beyond its live sessions'
(the collector is off, see app_hooks.py): what reaped sessions left behind."""

import gc

import numpy as np
from bokeh.document import Document
from bokeh.io import curdoc
from bokeh.layouts import column
from bokeh.models import ColumnDataSource, Slider
from bokeh.plotting import figure

x = np.linspace(0, 4 * np.pi, 50)
source = ColumnDataSource(data=dict(x=x, y=np.sin(x)))
plot = figure(height=200, width=300, x_range=[0, 4 * np.pi])
plot.line("x", "y", source=source)
amplitude = Slider(title="amplitude", value=1.0, start=-5.0, end=5.0, step=0.1, name="amplitude")


def update(attr, old, new):
    source.data = dict(x=x, y=new * np.sin(x))


def tick():
    amplitude.title = "amplitude"


amplitude.on_change("value", update)
doc = curdoc()
doc.add_root(column(amplitude, plot))
doc.add_periodic_callback(tick, 1000)

live = len(doc.session_context.server_context.sessions) + 1  # the live ones and this one
objects = gc.get_objects()
documents = sum(1 for o in objects if isinstance(o, Document))
sliders = sum(1 for o in objects if isinstance(o, Slider))
del objects
print(f"gc-probe left behind: documents={documents - live} sliders={sliders - live}", flush=True)

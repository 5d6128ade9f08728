"""S3 streaming app: a periodic callback streams 10 points every 100 ms (rollover 1000).

Ideal delivery is therefore 10 PATCH-DOC (ColumnsStreamed) messages per second per session.
"""

import random

from bokeh.io import curdoc
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure

source = ColumnDataSource(data=dict(x=[], y=[]), name="source")
plot = figure(height=300, width=600, title="stream")
plot.line("x", "y", source=source)
state = {"t": 0}


def tick():
    t0 = state["t"]
    state["t"] = t0 + 10
    source.stream(dict(x=list(range(t0, t0 + 10)), y=[random.random() for _ in range(10)]), rollover=1000)


curdoc().add_root(plot)
curdoc().add_periodic_callback(tick, 100)
curdoc().title = "stream"

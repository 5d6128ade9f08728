"""S5 big-document app: a 100,000-point scatter (x, y float64 -> 1.6 MB of binary buffers)."""

import numpy as np
from bokeh.io import curdoc
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure

N = 100_000
rng = np.random.default_rng(42)
source = ColumnDataSource(data=dict(x=rng.random(N), y=rng.random(N)), name="source")
plot = figure(height=500, width=500, title="100k scatter")
plot.scatter("x", "y", source=source, size=2)
curdoc().add_root(plot)
curdoc().title = "bigdoc"

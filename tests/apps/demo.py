"""Slider -> Python callback -> Div text and a numpy data source (binary buffers)."""

import numpy as np
from bokeh.io import curdoc
from bokeh.layouts import column
from bokeh.models import ColumnDataSource, Div, Slider

doc = curdoc()
source = ColumnDataSource(data={"x": np.arange(3, dtype="float64")}, name="src")
slider = Slider(start=0, end=10, value=1, step=1, name="slider", title="s")
div = Div(text="value=1", name="div")


def changed(attr, old, new):
    div.text = f"value={new}"
    source.data = {"x": np.full(3, float(new))}


slider.on_change("value", changed)
doc.add_root(column(slider, div, name="layout"))
doc.add_root(source)
doc.title = "demo"

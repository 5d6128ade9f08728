"""A slider whose callback shows "working", computes for a second (a sleep), then shows the result."""

import time

from bokeh.io import curdoc
from bokeh.models import Div, Slider

status = Div(text="idle", name="status")
slider = Slider(start=0, end=10, value=0, step=1, name="slider")


def changed(attr, old, new):
    status.text = "working"
    time.sleep(1.0)
    status.text = f"done {new}"


slider.on_change("value", changed)
curdoc().add_root(slider)
curdoc().add_root(status)

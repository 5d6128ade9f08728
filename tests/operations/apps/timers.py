"""Timers and a slider for the metrics and slow-callback tests.

At session start: a next-tick callback that sleeps 0.3 s (slow), a timeout callback that raises
once, and a quick periodic callback every 100 ms. Setting the slider to 9 makes its Python
callback sleep 0.3 s (a slow PATCH-DOC); 7 makes it log a warning; other values are quick.
"""

import logging
import time

from bokeh.io import curdoc
from bokeh.layouts import column
from bokeh.models import Div, Slider

doc = curdoc()
slider = Slider(start=0, end=10, value=1, step=1, name="slider", title="s")
div = Div(text="value=1", name="div")


def changed(attr, old, new):
    if new == 9:
        time.sleep(0.3)
    if new == 7:
        logging.getLogger("timers_app").warning("seven chosen")
    div.text = f"value={new}"


def sleepy_tick():
    time.sleep(0.3)


def boom():
    raise ValueError("a timer callback failed on purpose")


def quick_periodic():
    pass


slider.on_change("value", changed)
doc.add_next_tick_callback(sleepy_tick)
doc.add_timeout_callback(boom, 50)
doc.add_periodic_callback(quick_periodic, 100)
doc.add_root(column(slider, div, name="layout"))

"""A slider callback that relies on state the app keeps outside the document.

``history`` is filled by the "Remember" button, and the slider's callback reads its last entry.
When the session store restores the slider's value on another process, the rebuilt session has an
empty history, so the callback raises there.
"""

import os

from bokeh.io import curdoc
from bokeh.layouts import column
from bokeh.models import Button, Div, Slider

history = []

slider = Slider(title="value", value=1, start=0, end=10, step=1, name="slider")
remember = Button(label="Remember", name="remember")
report = Div(text="nothing yet", name="report")
pid = Div(text="pid=none", name="pid")


def remembered():
    history.append(slider.value)
    pid.text = f"pid={os.getpid()}"


def moved(attr, old, new):
    report.text = f"{new} (remembered {history[-1]})"
    pid.text = f"pid={os.getpid()}"


remember.on_click(remembered)
slider.on_change("value", moved)
curdoc().add_root(column(slider, remember, report, pid, name="layout"))
curdoc().title = "Fragile"

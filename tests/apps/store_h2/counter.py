"""A store test app: a slider whose Python callback echoes its value into a Div.

Every run of the app (one per session built or rebuilt) appends `run <pid> <session id>` to the
file named by $STORE_H2_RUNS, so tests can count where and how often sessions were built.
"""

import os

from bokeh.io import curdoc
from bokeh.models import Div, Slider

doc = curdoc()
runs = os.environ.get("STORE_H2_RUNS")
if runs:
    with open(runs, "a") as f:
        f.write(f"run {os.getpid()} {doc.session_context.id}\n")

slider = Slider(title="value", value=0, start=0, end=100, step=1, name="value")
echo = Div(text="echo 0", name="echo")


def changed(attr, old, new):
    echo.text = f"echo {new}"


slider.on_change("value", changed)
doc.add_root(slider)
doc.add_root(echo)

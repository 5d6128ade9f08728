"""S9 blocking app: two sliders whose Python callbacks block for about one second.

`sleep` calls time.sleep(1); `cpu` spins the CPU for 1 s. Both then update the Div, so the
client sees a PATCH-DOC followed by the OK once the callback has finished.
"""

import time

from bokeh.io import curdoc
from bokeh.layouts import column
from bokeh.models import Div, Slider

BLOCK_S = 1.0
sleep_slider = Slider(title="sleep", value=0, start=0, end=1_000_000, step=1, name="sleep")
cpu_slider = Slider(title="cpu", value=0, start=0, end=1_000_000, step=1, name="cpu")
status = Div(text="idle", name="status")


def on_sleep(attr, old, new):
    time.sleep(BLOCK_S)
    status.text = f"slept {new}"


def on_cpu(attr, old, new):
    end = time.perf_counter() + BLOCK_S
    n = 0
    while time.perf_counter() < end:
        n += 1
    status.text = f"spun {new} ({n})"


sleep_slider.on_change("value", on_sleep)
cpu_slider.on_change("value", on_cpu)
curdoc().add_root(column(sleep_slider, cpu_slider, status))
curdoc().title = "blocking"

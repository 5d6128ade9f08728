"""A periodic callback that counts, and a one-shot timeout."""

from bokeh.io import curdoc
from bokeh.models import Div

doc = curdoc()
counter = Div(text="0", name="counter")
flag = Div(text="waiting", name="flag")


def tick():
    counter.text = str(int(counter.text) + 1)


def once():
    flag.text = "fired"


doc.add_periodic_callback(tick, 50)
doc.add_timeout_callback(once, 100)
doc.add_root(counter)
doc.add_root(flag)

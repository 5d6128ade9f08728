"""A page whose layout is drawn at random on every build: a board of 20 to 30 cards, each a Div or
a Paragraph, above a click counter.

The session store cannot put such a session back together on another process (running the app
again builds a different document), so there the session starts afresh.
"""

import os
import random

from bokeh.io import curdoc
from bokeh.layouts import column
from bokeh.models import Button, Div, Paragraph

cards = [random.choice([Div, Paragraph])(text=f"card {n}") for n in range(random.randint(20, 30))]
count = Div(text="clicks: 0", name="count")
pid = Div(text="pid=none", name="pid")
button = Button(label="Click", name="button")


def clicked():
    count.text = f"clicks: {int(count.text.split()[1]) + 1}"
    pid.text = f"pid={os.getpid()}"


button.on_click(clicked)
curdoc().add_root(column(*cards, button, count, pid, name="layout"))
curdoc().title = "Lottery"

"""A session that keeps its document lock for two seconds right after it starts."""

import asyncio

from bokeh.io import curdoc
from bokeh.models import Div

doc = curdoc()
div = Div(text="working", name="state")


async def slow():
    await asyncio.sleep(2)
    div.text = "done"


doc.add_next_tick_callback(slow)
doc.add_root(div)

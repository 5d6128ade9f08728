"""A plain Bokeh session (a Div and a periodic callback); see app_hooks.py."""

from bokeh.io import curdoc
from bokeh.models import Div

div = Div(text="0", name="count")
curdoc().add_root(div)
curdoc().add_periodic_callback(lambda: setattr(div, "text", str(int(div.text) + 1)), 200)

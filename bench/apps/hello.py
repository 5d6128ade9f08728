"""S1 'hello' app: a document with a single Div (the cheapest possible session)."""

from bokeh.io import curdoc
from bokeh.models import Div

curdoc().add_root(Div(text="Hello, world", name="hello"))
curdoc().title = "hello"

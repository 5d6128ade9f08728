"""An app that raises while building its document."""

from bokeh.io import curdoc
from bokeh.models import Div

curdoc().add_root(Div(text="partial"))
raise ValueError("the data file is missing")

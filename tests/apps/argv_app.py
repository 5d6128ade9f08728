import sys

from bokeh.io import curdoc
from bokeh.models import Div

curdoc().add_root(Div(text=" ".join(sys.argv[1:]), name="argv"))
curdoc().add_root(Div(text=__name__, name="modname"))

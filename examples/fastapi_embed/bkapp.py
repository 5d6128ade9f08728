"""The Bokeh app the FastAPI page embeds: a slider whose Python callback redraws a curve.

Moving the ``frequency`` slider in the browser runs ``on_frequency`` on the server, which
rewrites the ``readout`` Div and the ``source`` data; the browser then shows both changes. The
``greeting`` Div shows the ``name`` query argument of the autoload request, which
``server_document(..., arguments={"name": ...})`` passes through.

Serve it with ``aperture serve examples/fastapi_embed/bkapp.py`` (see README.md for the flags).
"""

import html

import numpy as np
from bokeh.io import curdoc
from bokeh.layouts import column
from bokeh.models import ColumnDataSource, Div, Slider
from bokeh.plotting import figure

X = np.linspace(0, 2 * np.pi, 200)

doc = curdoc()
arguments = doc.session_context.request.arguments if doc.session_context else {}
name = arguments.get("name", [b"visitor"])[0].decode("utf-8", "replace")

source = ColumnDataSource(data={"x": X, "y": np.sin(X)}, name="source")
plot = figure(height=300, width=500, title="sin(frequency * x)", name="plot")
plot.line("x", "y", source=source, line_width=3)

slider = Slider(start=1, end=5, value=1, step=1, title="frequency", name="frequency")
readout = Div(text="Python has not seen a change yet", name="readout")
# A Div renders HTML, so text from the request is escaped.
greeting = Div(text=f"Hello, {html.escape(name)}!", name="greeting")


def on_frequency(attr: str, old: float, new: float) -> None:
    source.data = {"x": X, "y": np.sin(new * X)}
    readout.text = f"Python drew frequency {new}"


slider.on_change("value", on_frequency)
doc.add_root(column(greeting, slider, readout, plot, name="layout"))
doc.title = "Embedded sine"

"""A directory app: a signal plot steered by a Select widget.

Besides ``main.py`` this directory carries everything a directory app may use:
``templates/index.html`` (extends Bokeh's base page and shows the template
variable ``heading`` set below), ``static/style.css`` (served at
``/dashboard/static/style.css``), ``theme.yaml`` (plot colours) and
``app_hooks.py`` (puts a greeting built from the ``?name=`` request argument on
the session context, which this script shows).

Stable names for tests: ``source``, ``plot``, ``signal`` (the Select),
``summary`` (a Div recomputed in Python on every selection), ``greeting`` and
``session-number`` (Divs filled from what ``app_hooks.py`` stored).
"""

import numpy as np
from bokeh.io import curdoc
from bokeh.layouts import column, row
from bokeh.models import ColumnDataSource, Div, Select
from bokeh.plotting import figure

X = np.linspace(0, 4 * np.pi, 300)
SIGNALS = {
    "sine": np.sin(X),
    "cosine": np.cos(X),
    "damped": np.exp(-X / 4) * np.sin(3 * X),
    "square": np.sign(np.sin(X)),
}


def summarize(name):
    y = SIGNALS[name]
    return f"{name}: min {y.min():.3f}, max {y.max():.3f}, mean {y.mean():.3f}"


source = ColumnDataSource(data={"x": X, "y": SIGNALS["sine"]}, name="source")

plot = figure(height=350, width=600, title="sine", tools="pan,reset,wheel_zoom", name="plot")
plot.line("x", "y", source=source, line_width=2)

signal = Select(title="signal", value="sine", options=list(SIGNALS), name="signal")
summary = Div(text=summarize("sine"), name="summary", css_classes=["summary"])


def on_signal(attr, old, new):
    source.data = {"x": X, "y": SIGNALS[new]}
    plot.title.text = new
    summary.text = summarize(new)


signal.on_change("value", on_signal)

doc = curdoc()
# app_hooks.on_session_created stores these; the context is None outside a server.
context = doc.session_context
greeting = Div(text=getattr(context, "greeting", "Hello!"), name="greeting")
number = getattr(context, "session_number", None)
session_number = Div(text=f"session #{number}" if number is not None else "session #?", name="session-number")

doc.add_root(column(row(greeting, session_number), signal, summary, plot, name="layout"))
doc.title = "Dashboard"
doc.template_variables["heading"] = "Signal dashboard"

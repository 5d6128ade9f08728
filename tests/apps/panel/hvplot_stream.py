"""An hvplot plot driven by a widget, and a HoloViews ``Tap`` stream reporting clicks.

Choosing a column in the select re-renders the scatter plot through
``pn.bind``; tapping the plot sends the data coordinates to Python through a
``hv.streams.Tap`` and shows them in the ``tapped`` pane. The data is made
here with numpy, so nothing is downloaded.
"""

import holoviews as hv
import hvplot.pandas  # noqa: F401  (registers the .hvplot accessor)
import numpy as np
import pandas as pd
import panel as pn

pn.extension()

x = np.linspace(0.0, 10.0, 50)
frame = pd.DataFrame({"x": x, "sine": np.sin(x), "cosine": np.cos(x), "ramp": x / 10.0})
column = pn.widgets.Select(name="Column", options=["sine", "cosine", "ramp"], css_classes=["column"])
tapped = pn.pane.Markdown("no tap yet", css_classes=["tapped"])


def scatter(name: str) -> hv.Points:
    print(f"hvplot_stream: plot {name}", flush=True)
    return frame.hvplot.scatter(x="x", y=name, title=name, height=300, width=500)


def on_tap(x: float | None, y: float | None) -> None:
    if x is None or y is None:
        return
    print(f"hvplot_stream: tap x={x:.2f} y={y:.2f}", flush=True)
    tapped.object = f"tapped at x={x:.1f}"


plot = hv.DynamicMap(pn.bind(scatter, column))
tap = hv.streams.Tap(source=plot, x=None, y=None)
tap.add_subscriber(on_tap)

pn.Column(column, pn.pane.HoloViews(plot, css_classes=["plot"]), tapped).servable(title="Panel hvplot")

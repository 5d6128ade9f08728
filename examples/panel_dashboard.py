"""A Panel dashboard: a FastListTemplate with a widget-driven hvplot plot and a Tabulator.

The sidebar picks a signal, how many samples to take and how much noise to add;
the plot, the table of samples and the summary follow through ``pn.bind``.
Selecting rows in the table marks them in the summary. Everything is computed
here with numpy, and Aperture serves Panel's assets itself (as ``panel serve``
does), so the app needs no network. The plot is a ``pn.pane.HoloViews`` whose
object is bound, which also updates under ``bokeh serve``; a ``hv.DynamicMap``
of a bound function updates only where Panel's ``document_ready`` hook is wired
(``panel serve``, Aperture).

Serve it with ``aperture serve examples/panel_dashboard.py`` (or ``bokeh serve``)
and open http://localhost:5006/panel_dashboard. Components carry ``css_classes``
(``signal``, ``samples``, ``noise``, ``plot``, ``table``, ``summary``) so tests
can find them in the page.
"""

import hvplot.pandas  # noqa: F401  (registers the .hvplot accessor)
import numpy as np
import pandas as pd
import panel as pn

pn.extension("tabulator")

SIGNALS = {
    "sine": np.sin,
    "cosine": np.cos,
    "square": lambda x: np.sign(np.sin(x)),
}

signal = pn.widgets.Select(name="Signal", options=list(SIGNALS), css_classes=["signal"])
samples = pn.widgets.IntSlider(name="Samples", start=10, end=200, step=10, value=50, css_classes=["samples"])
noise = pn.widgets.FloatSlider(name="Noise", start=0.0, end=1.0, step=0.1, value=0.0, css_classes=["noise"])


def sampled(kind: str, count: int, amount: float) -> pd.DataFrame:
    x = np.linspace(0.0, 4 * np.pi, count)
    jitter = np.random.default_rng(seed=count).normal(0.0, amount, count) if amount else 0.0
    return pd.DataFrame({"x": x.round(3), "y": (SIGNALS[kind](x) + jitter).round(3)})


def plot(kind: str, count: int, amount: float):
    frame = sampled(kind, count, amount)
    return frame.hvplot.line(x="x", y="y", title=kind, height=320, responsive=True, ylim=(-2.5, 2.5))


table = pn.widgets.Tabulator(
    pn.bind(sampled, signal, samples, noise),
    selectable=True,
    disabled=True,
    show_index=False,
    page_size=10,
    pagination="local",
    sizing_mode="stretch_width",
    css_classes=["table"],
)


def summary(kind: str, count: int, amount: float, selection: list[int]) -> str:
    frame = sampled(kind, count, amount)
    mean = round(frame["y"].mean(), 3) + 0.0  # + 0.0 turns a rounded -0.0 into 0.0
    text = f"{kind}: {count} samples, mean {mean:.3f}, max {frame['y'].max():.3f}"
    if selection:
        text += f"; selected x = {', '.join(str(frame['x'][i]) for i in selection)}"
    return text


pn.template.FastListTemplate(
    title="Panel dashboard",
    sidebar=[signal, samples, noise],
    main=[
        pn.pane.HoloViews(
            pn.bind(plot, signal, samples, noise), css_classes=["plot"], sizing_mode="stretch_width"
        ),
        pn.pane.Markdown(
            pn.bind(summary, signal, samples, noise, table.param.selection), css_classes=["summary"]
        ),
        table,
    ],
).servable(title="Panel dashboard")

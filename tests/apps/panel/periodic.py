"""A periodic callback (``pn.state.add_periodic_callback``) that streams rows into a Tabulator.

Every 100 ms ``tick`` appends a row and updates a ``Number`` indicator; the
button stops and restarts the callback through its ``running`` flag, as
Panel's periodic-callback how-to does, and prints a ``periodic:`` line.
"""

import pandas as pd
import panel as pn

pn.extension("tabulator")

table = pn.widgets.Tabulator(pd.DataFrame({"step": [0], "square": [0]}), show_index=False, height=200)
ticks = pn.indicators.Number(name="ticks", value=0, css_classes=["ticks"])
toggle = pn.widgets.Button(name="Pause", css_classes=["toggle"])


def tick() -> None:
    step = ticks.value + 1
    ticks.value = step
    table.stream({"step": [step], "square": [step * step]}, rollover=50)


# It stops by itself after 30 s, so a page left open costs the server nothing for long.
callback = pn.state.add_periodic_callback(tick, period=100, count=300)


def flip(event) -> None:
    callback.running = not callback.running
    toggle.name = "Pause" if callback.running else "Resume"
    print(f"periodic: running={callback.running} at {ticks.value}", flush=True)


toggle.on_click(flip)

pn.Column(toggle, ticks, table).servable(title="Panel periodic")

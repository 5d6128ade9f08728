"""A Tabulator the user edits and selects rows in, as Panel's Tabulator reference shows.

``on_edit`` receives each cell edit (printed as a ``tabulator_edit: edit`` line
and reflected in the ``status`` pane); a watcher on ``selection`` reports the
selected rows. The DataFrame is made here, so nothing is fetched.
"""

import pandas as pd
import panel as pn

pn.extension("tabulator")

frame = pd.DataFrame(
    {"fruit": ["apple", "banana", "cherry", "damson"], "count": [3, 5, 7, 11]},
)
# Counts are edited; clicking a (read-only) fruit cell selects its row.
table = pn.widgets.Tabulator(
    frame,
    editors={"fruit": None},
    selectable=True,
    show_index=False,
    css_classes=["table"],
    sizing_mode="stretch_width",
)
status = pn.pane.Markdown("no edits yet", css_classes=["status"])
selected = pn.pane.Markdown("nothing selected", css_classes=["selected"])


def on_edit(event) -> None:
    print(f"tabulator_edit: edit {event.column}[{event.row}] {event.old!r} -> {event.value!r}", flush=True)
    status.object = (
        f"{event.column} of row {event.row} is now {event.value}; total {table.value['count'].sum()}"
    )


def on_select(event) -> None:
    fruits = ", ".join(table.value["fruit"].iloc[event.new])
    print(f"tabulator_edit: selection {event.new}", flush=True)
    selected.object = f"selected: {fruits}" if fruits else "nothing selected"


table.on_edit(on_edit)
table.param.watch(on_select, "selection")

pn.Column(table, status, selected).servable(title="Panel Tabulator")

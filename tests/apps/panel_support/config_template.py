"""A template chosen with `pn.extension(template=...)` and filled with `.servable(target=...)`,
as Panel's documentation teaches: `panel serve` renders it; under `bokeh serve` the page is empty."""

import panel as pn

pn.extension(template="fast")
pn.state.template.title = "config template"
pn.pane.Markdown("in the main area").servable(target="main")
pn.pane.Markdown("in the sidebar").servable(target="sidebar")

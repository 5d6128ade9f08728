"""Shows what app_hooks.py put in `pn.state.cache`, and prints `panel-support built <id>`."""

import panel as pn

doc = pn.state.curdoc
print(f"panel-support built {doc.session_context.id}", flush=True)
pn.pane.Markdown(pn.state.cache.get("greeting", "no greeting")).servable()

"""Shows what app_hooks.py put in `pn.state.cache`, and prints `panel-support built <id>`.

With `?block=1`, an onload callback calls `pn.state.block_expiration()` (which blocks the
expiration of every session of the app that exists then) and prints `panel-support blocked <id>`.
"""

import panel as pn

doc = pn.state.curdoc
session_id = doc.session_context.id
print(f"panel-support built {session_id}", flush=True)
pn.pane.Markdown(pn.state.cache.get("greeting", "no greeting")).servable()


def block():
    pn.state.block_expiration()
    print(f"panel-support blocked {session_id}", flush=True)


if "block" in doc.session_context.request.arguments:
    pn.state.onload(block)

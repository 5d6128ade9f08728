"""`panel_min.py` with Panel's stylesheets linked on this server, as `panel serve` links them.

Outside `panel serve` Panel links its components' CSS on its CDN unless the document's
`dist_url` template variable says otherwise; the relative path resolves under any `--prefix`.
"""

import panel as pn

pn.extension()
pn.state.curdoc.template_variables["dist_url"] = "static/extensions/panel/"
pn.Column(pn.widgets.Button(name="b"), name="panel-local").servable()

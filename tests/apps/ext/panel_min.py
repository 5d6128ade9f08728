"""The smallest Panel app: a Column holding a Button (its page loads Panel's extension assets)."""

import panel as pn

pn.extension()
pn.Column(pn.widgets.Button(name="b"), name="panel-min").servable()

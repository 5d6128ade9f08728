"""Who the app sees: the signed-in user and claims from `session_context.request`, and a slider.

``user`` and ``claims`` show `request.user` and `request.claims` (JSON); moving ``slider`` runs a
Python callback that writes ``echo``, so a test sees the websocket carry a round trip.
"""

import json

from bokeh.io import curdoc
from bokeh.layouts import column
from bokeh.models import Div, Slider

doc = curdoc()
request = doc.session_context.request
user = Div(text=f"user={request.user}", name="user")
claims = Div(text=json.dumps(request.claims, sort_keys=True), name="claims")
slider = Slider(start=0, end=10, value=1, step=1, name="slider", title="s")
echo = Div(text="value=1", name="echo")


def moved(attr, old, new):
    echo.text = f"value={new}"


slider.on_change("value", moved)
doc.add_root(column(user, claims, slider, echo, name="layout"))
doc.title = "whoami"

"""A Button whose Python callback changes a Div, a small plot, and what the request looked like.

``info`` shows ``protocol``, ``remote_ip`` and the serving process as the app saw them
(``session_context.request``), so a test can check ``--use-xheaders`` behind a proxy and
which instance ran the app. When ``APERTURE_DEPLOY_RUNS_FILE`` is set, every run of this
script appends one line ``<pid> <session id>`` to that file: the tests count app runs per
page view behind a load balancer with it.
"""

import os

from bokeh.io import curdoc
from bokeh.layouts import column
from bokeh.models import Button, Div
from bokeh.plotting import figure

doc = curdoc()
context = doc.session_context
request = context.request

runs_file = os.environ.get("APERTURE_DEPLOY_RUNS_FILE")
if runs_file:
    with open(runs_file, "a", encoding="utf-8") as runs:
        runs.write(f"{os.getpid()} {context.id}\n")

protocol = getattr(request, "protocol", "unknown")
remote_ip = getattr(request, "remote_ip", "unknown")
info = Div(text=f"protocol={protocol} remote_ip={remote_ip} pid={os.getpid()}", name="info")
result = Div(text="not clicked", name="result")
button = Button(label="click me", name="button")
clicks = 0


def clicked(event):
    global clicks
    clicks += 1
    result.text = f"clicked {clicks} in pid={os.getpid()}"


button.on_event("button_click", clicked)

plot = figure(width=300, height=200, toolbar_location=None, name="plot")
plot.line([0, 1, 2, 3], [0, 3, 1, 2], line_width=3)

doc.add_root(column(button, result, info, plot, name="layout"))
doc.title = "deploy"

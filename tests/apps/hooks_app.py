"""Records session destruction and counts runs, into the file named by $HOOKS_EVENTS."""

import os

from bokeh.io import curdoc
from bokeh.models import Div

EVENTS = os.environ.get("HOOKS_EVENTS")


def record(line):
    if EVENTS:
        with open(EVENTS, "a") as f:
            f.write(f"{line}\n")


doc = curdoc()
record(f"run {os.getpid()}")
doc.on_session_destroyed(lambda ctx: record(f"destroyed {ctx.id}"))
request = doc.session_context.request
doc.add_root(Div(text=f"{request.protocol} {request.remote_ip}", name="where"))

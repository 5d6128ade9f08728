"""Sessions for shutdown and start-up tests; what happens is recorded in $LIFECYCLE_EVENTS.

$LIFECYCLE_CALLBACK picks the session's behaviour: "busy" (a 100 ms periodic callback that
takes 100 ms, so the session is always in a callback or about to start one) or "stuck" (a
change of the `trigger` Div's text starts a callback that never returns). The `loaded` Div
says whether `on_server_loaded` had finished when the session was built.
"""

import os
import time

from bokeh.io import curdoc
from bokeh.models import Div

EVENTS = os.environ.get("LIFECYCLE_EVENTS")
MODE = os.environ.get("LIFECYCLE_CALLBACK", "none")


def record(line):
    if EVENTS:
        with open(EVENTS, "a") as f:
            f.write(f"{line}\n")


def server_loaded():
    if not EVENTS or not os.path.exists(EVENTS):
        return False
    with open(EVENTS) as f:
        return "server-loaded-done\n" in f.readlines()


doc = curdoc()
session_id = doc.session_context.id
loaded = server_loaded()
record(f"session {session_id} loaded={loaded}")
counter = Div(text="0", name="counter")
trigger = Div(text="", name="trigger")
doc.add_root(Div(text=f"server loaded = {loaded}", name="loaded"))
doc.add_root(counter)
doc.add_root(trigger)


def busy():
    time.sleep(0.1)
    counter.text = str(int(counter.text) + 1)


def never_returns(attr, old, new):
    record(f"stuck {session_id}")
    while True:
        time.sleep(0.05)


if MODE == "busy":
    doc.add_periodic_callback(busy, 100)
elif MODE == "stuck":
    trigger.on_change("text", never_returns)

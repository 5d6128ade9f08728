"""Prints whether anything in the server process has imported Panel, when a session ends and when
the server stops: `plain-bokeh panel imported: False` is what a plain Bokeh app must see."""

import sys


def report(when):
    print(f"plain-bokeh panel imported: {'panel' in sys.modules} ({when})", flush=True)


def on_session_destroyed(session_context):
    report("session destroyed")


def on_server_unloaded(server_context):
    report("server unloaded")

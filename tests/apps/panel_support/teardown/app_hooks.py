"""Reports the per-session state Panel keeps in `pn.state`, for tests/integration/test_panel_teardown.py.

`report(doc)` (put in `pn.state.cache["teardown_report"]` for main.py) collects garbage and prints
`panel-state: locations=N views=N ...`, counting only entries that belong to documents other than
`doc`: what ended sessions left behind. `on_server_unloaded` reports too, after shutdown has
destroyed every session. `on_session_destroyed` prints what it can still read of the document.
"""

import gc

import panel as pn


def report(doc=None):
    gc.collect()
    state = pn.state

    def others(mapping):
        return sum(1 for key in list(mapping) if key is not doc)

    counts = {
        "locations": others(state._locations),
        "views": sum(1 for entry in list(state._views.values()) if entry[2] is not doc),
        "templates": others(state._templates),
        "notifications": others(state._notifications),
        "periodic": others(state._periodic),
        "onload": others(state._onload),
        "browsers": others(state._browsers),
        "live": state.session_info["live"],
    }
    print("panel-state: " + " ".join(f"{k}={v}" for k, v in counts.items()), flush=True)


def on_server_loaded(server_context):
    pn.state.cache["teardown_report"] = report


def on_session_destroyed(session_context):
    doc = session_context._document
    try:
        roots = len(doc.roots)
    except AttributeError:  # bokeh serve has emptied the document by now
        roots = "gone"
    print(f"teardown hook: title={doc.title!r} roots={roots}", flush=True)


def on_server_unloaded(server_context):
    report()

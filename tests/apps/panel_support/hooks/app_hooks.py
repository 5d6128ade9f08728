"""Panel's process-wide session hooks and cache, set up once per process as `panel serve --setup`
would: `pn.state.on_session_created` and `pn.state.on_session_destroyed` callbacks print
`panel-support created/destroyed <id>`; `pn.state.cache` gets a value main.py shows."""

import panel as pn


def created(session_context):
    print(f"panel-support created {session_context.id}", flush=True)


def destroyed(session_context):
    print(f"panel-support destroyed {session_context.id}", flush=True)


def on_server_loaded(server_context):
    pn.state.cache["greeting"] = "hello from on_server_loaded"
    pn.state.on_session_created(created)
    pn.state.on_session_destroyed(destroyed)

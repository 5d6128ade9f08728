"""Shows what session_context exposes, and checks curdoc() in sync and async callbacks."""

import asyncio
import json

from bokeh.io import curdoc
from bokeh.models import Button, Div

doc = curdoc()
ctx = doc.session_context
request = ctx.request
info = {
    "id": ctx.id,
    "arguments": {k: [v.decode() for v in vs] for k, vs in request.arguments.items()},
    "cookies": request.cookies,
    "headers": {k: v for k, v in request.headers.items() if k in ("X-Custom", "Host", "Cookie")},
    "payload_keys": sorted(ctx.token_payload),
    "has_server_context": ctx.server_context is not None,
    "sessions_visible": isinstance(ctx.server_context.sessions, list),
}
div = Div(text=json.dumps(info, sort_keys=True), name="info")
result = Div(text="", name="result")
button = Button(label="go", name="go")


async def later():
    await asyncio.sleep(0.01)
    result.text = "async-ok" if curdoc() is doc else "async-wrong-curdoc"


def clicked(event):
    ok = curdoc() is doc
    result.text = "sync-ok" if ok else "sync-wrong"
    doc.add_next_tick_callback(later)


button.on_event("button_click", clicked)
doc.add_root(div)
doc.add_root(result)
doc.add_root(button)

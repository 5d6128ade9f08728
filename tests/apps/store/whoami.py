"""A page that reads the request it was opened with, and never shows a credential.

It says which theme the ``theme`` cookie asks for and whether an ``Authorization`` or
``X-Tenant-Key`` header came, each time the ``amplitude`` slider or the ``title`` input changes.
"""

from bokeh.io import curdoc
from bokeh.layouts import column
from bokeh.models import Div, Slider, TextInput

request = curdoc().session_context.request
headers = {name.lower() for name in request.headers}
facts = (
    f"theme={request.cookies.get('theme', 'light')}, authorized={'authorization' in headers}, "
    f"tenant={'x-tenant-key' in headers}"
)

amplitude = Slider(title="amplitude", value=1.0, start=0.0, end=5.0, step=0.25, name="amplitude")
title = TextInput(title="title", value="", name="title")
status = Div(text="not changed yet", name="status")


def changed(attr, old, new):
    status.text = f"amplitude={amplitude.value}, title={title.value!r}; {facts}"


amplitude.on_change("value", changed)
title.on_change("value", changed)
curdoc().add_root(column(amplitude, title, status, name="layout"))

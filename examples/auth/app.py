"""The app behind the login of ``auth.py``: greets the user, a plot, a slider, a logout button.

Serve it with the auth module (see README.md)::

    aperture serve examples/auth/app.py --auth-module examples/auth/auth.py \\
        --cookie-secret "$(aperture secret)" --enable-xsrf-cookies

The server only creates a session for a request whose ``user`` cookie the auth
module's ``get_user`` accepted, so the app can read the name from the cookies of
that request (``curdoc().session_context.request.cookies``). The logout button goes
to ``curdoc().session_context.logout_url`` (the auth module's ``logout_url`` under
the server's ``--prefix``).

Models carry stable ``name=`` attributes (``hello``, ``plot``, ``source``,
``frequency``, ``status``, ``logout``) so tests can find them through BokehJS.
"""

from __future__ import annotations

import base64
import binascii
import html

import numpy as np
from bokeh.io import curdoc
from bokeh.layouts import column
from bokeh.models import Button, ColumnDataSource, CustomJS, Div, Slider
from bokeh.plotting import figure


def user_from_cookie(signed: str | None) -> str | None:
    """The user name inside the signed ``user`` cookie, for display.

    The signature was checked by ``get_user`` before this session was created, so
    this only unpacks Tornado's signed-value format (version 2:
    ``2|1:0|10:<time>|4:user|<n>:<base64 name>|<signature>``). Use ``get_user`` (in
    the auth module), not this, for any access decision.
    """
    parts = (signed or "").split("|")
    if len(parts) != 6 or parts[0] != "2":
        return None
    try:
        return base64.b64decode(parts[4].partition(":")[2], validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


doc = curdoc()
context = doc.session_context
request = context.request if context is not None else None
user = user_from_cookie(request.cookies.get("user") if request is not None else None) or "stranger"
logout_url = context.logout_url if context is not None else None

hello = Div(text=f"<h2>Hello, {html.escape(user)}</h2>", name="hello")

X = np.linspace(0, 4 * np.pi, 200)
source = ColumnDataSource(data={"x": X, "y": np.sin(X)}, name="source")
plot = figure(height=300, width=500, title="sin(f·x)", tools="pan,reset,wheel_zoom", name="plot")
plot.line("x", "y", source=source, line_width=3)

frequency = Slider(title="frequency", value=1.0, start=0.5, end=5.0, step=0.5, name="frequency")
status = Div(text="frequency=1.0", name="status")


def update(attr: str, old: float, new: float) -> None:
    source.data = {"x": X, "y": np.sin(new * X)}
    status.text = f"frequency={new}"


frequency.on_change("value", update)

logout = Button(label="Log out", name="logout", visible=logout_url is not None)
logout.js_on_click(CustomJS(args={"url": logout_url or ""}, code="window.location.href = url"))

doc.add_root(column(hello, plot, frequency, status, logout, name="layout"))
doc.title = "Auth demo"

"""Make Panel's component stylesheets load from the serving server, as ``panel serve`` arranges.

Panel gives its components stylesheets on its CDN (cdn.holoviz.org) and rewrites
them to the server's ``static/extensions/panel/`` only in the page handler of
``panel serve``, which reads the document's ``dist_url`` template variable. Under
``bokeh serve`` (and so under Aperture) nothing sets it and the stylesheets are
fetched from the CDN; offline, Tabulator then renders without its styles.
``serve_assets_locally()`` sets the variable for the current document before any
component is rendered. The path is relative, so it works behind ``--prefix``.
"""

import panel as pn

LOCAL_DIST = "static/extensions/panel/"


def serve_assets_locally() -> None:
    pn.state.curdoc.template_variables["dist_url"] = LOCAL_DIST

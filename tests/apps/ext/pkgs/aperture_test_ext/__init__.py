"""A packaged BokehJS extension for the tests, laid out as `bokeh init`/`bokeh build` make one.

`bokeh.ext.json` marks the package as an extension and, with no `package.json`, its assets
are `dist/` (the prebuilt bundle of `ext_div.ts`). Bokeh finds the bundle when a page holds an
`ExtDiv` and links it as `<prefix>/static/extensions/aperture_test_ext/aperture_test_ext.min.js`.
The package is importable only when `tests/apps/ext/pkgs` is on `PYTHONPATH`.
"""

from bokeh.models import Div


class ExtDiv(Div):
    """A Div drawn by this extension's own view (it sets `data-extension` on its element)."""

"""An app whose only root is a model of the packaged extension `aperture_test_ext`.

Serve it with `tests/apps/ext/pkgs` on `PYTHONPATH`.
"""

from aperture_test_ext import ExtDiv
from bokeh.io import curdoc

curdoc().add_root(ExtDiv(text="drawn by an extension", name="ext"))

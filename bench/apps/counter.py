"""S8 counter app: every run of the app script appends one line to $BENCH_COUNTER_FILE.

A run happens whenever the server creates a session, so lines / page views = app runs per page view.
"""

import runpy
from pathlib import Path

from bokeh.io import curdoc
from bokeh.models import Div

runpy.run_path(str(Path(__file__).parent.parent / "count_app_run.py"))
curdoc().add_root(Div(text="counted", name="counter"))
curdoc().title = "counter"

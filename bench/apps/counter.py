"""S8 counter app: every run of the app script appends one line to $BENCH_COUNTER_FILE.

A run happens whenever the server creates a session, so lines / page views = app runs per page view.
"""

import os
import time

from bokeh.io import curdoc
from bokeh.models import Div

path = os.environ.get("BENCH_COUNTER_FILE")
if path:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{os.getpid()} {time.time():.6f}\n".encode())
    finally:
        os.close(fd)
curdoc().add_root(Div(text="counted", name="counter"))
curdoc().title = "counter"

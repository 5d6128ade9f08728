"""S12 app: the `sliders` app, counting its runs like `counter.py` does.

Every run appends one line (`<pid> <time>`) to $BENCH_COUNTER_FILE, then runs `sliders.py` in this
module's namespace (reading and compiling it costs ~0.25 ms, under 1 % of a run), so a page view
costs what one of S1's sliders views does.
"""

import runpy
from pathlib import Path

runpy.run_path(str(Path(__file__).parent.parent / "count_app_run.py"))

_src = Path(__file__).with_name("sliders.py")
exec(compile(_src.read_text(), str(_src), "exec"))

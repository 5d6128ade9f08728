"""S12 app: the `sliders` app, counting its runs like `counter.py` does.

Every run appends one line (`<pid> <time>`) to $BENCH_COUNTER_FILE, then runs `sliders.py` in this
module's namespace (reading and compiling it costs ~0.25 ms, under 1 % of a run), so a page view
costs what one of S1's sliders views does.
"""

import os
import time
from pathlib import Path

path = os.environ.get("BENCH_COUNTER_FILE")
if path:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{os.getpid()} {time.time():.6f}\n".encode())
    finally:
        os.close(fd)

_src = Path(__file__).with_name("sliders.py")
exec(compile(_src.read_text(), str(_src), "exec"))

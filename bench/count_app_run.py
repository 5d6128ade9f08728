"""Not an app: the counting apps in bench/apps/ (`counter.py`, `sliders_counted.py`) run this file
once per app run. It appends one line (`<pid> <time>`) to $BENCH_COUNTER_FILE, so lines / page
views = app runs per page view."""

import os
import time

path = os.environ.get("BENCH_COUNTER_FILE")
if path:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{os.getpid()} {time.time():.6f}\n".encode())
    finally:
        os.close(fd)

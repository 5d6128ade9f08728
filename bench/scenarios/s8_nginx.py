"""S8 app runs per page view behind nginx (`least_conn`, three server instances).

Three instances of the `counter` app (each run of the app appends a line to $BENCH_COUNTER_FILE)
behind an nginx rendered into a temp dir (loopback port, websocket upgrade headers, no sticky
sessions), sharing one BOKEH_SECRET_KEY. Sequential page views through nginx, each like a browser's: GET page, websocket with
the token, ACK, PULL-DOC, close. Metric: app runs / page views (bokeh serve: 2.00, because the
websocket usually lands on another instance, which creates the session again).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from bench.loadgen.client import Target, open_session_and_pull
from bench.servers import Server, Slot, free_port, register_pid, stop, unregister_pid

from .common import Config, Goal, Metric, Outcome, Scenario

NGINX = "/usr/sbin/nginx"

CONF = """\
{user}worker_processes 1;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream bokeh_app {{
        least_conn;
{servers}
    }}
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://bokeh_app;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host:$server_port;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_buffering off;
            proxy_read_timeout 300s;
        }}
    }}
}}
"""


def render_conf(tmp: Path, port: int, upstream_ports: list[int]) -> str:
    servers = "\n".join(f"        server 127.0.0.1:{p};" for p in upstream_ports)
    user = "user root;\n" if os.geteuid() == 0 else ""
    return CONF.format(user=user, tmp=tmp, port=port, servers=servers)


@contextlib.asynccontextmanager
async def nginx(tmp: Path, upstream_ports: list[int], cpu: int | None):  # type: ignore[no-untyped-def]
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(render_conf(tmp, port, upstream_ports))
    log = open(tmp / "nginx.out", "wb")
    cmd = [NGINX, "-p", str(tmp), "-e", str(tmp / "error.log"), "-c", str(conf),
           "-g", f"daemon off; pid {tmp}/nginx.pid;"]  # fmt: skip
    if cpu is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(cpu), *cmd]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    register_pid(proc.pid)
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {(tmp / 'error.log').read_text(errors='replace')[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline:
                raise TimeoutError("nginx did not start")
            await asyncio.sleep(0.05)
        yield port
    finally:
        srv = Server(proc, port, tmp / "nginx.out", [])
        await stop(srv)  # SIGTERM = fast shutdown; master reaps its worker
        unregister_pid(proc.pid)
        log.close()


def _count(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


async def run(slot: Slot, cfg: Config) -> Outcome:
    out = Outcome()
    if not os.path.exists(NGINX):
        out.skipped = f"{NGINX} not found"
        return out
    tmp = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
    counter = tmp / "runs.txt"
    # The instances of one deployment share a secret key, as docs/deployment.md asks (Aperture's
    # instances relay to each other only then); the same environment for both servers.
    env = {"BENCH_COUNTER_FILE": str(counter), "BOKEH_SECRET_KEY": secrets.token_urlsafe(32)}
    instances: list[Server] = []
    try:
        for _ in range(3):
            instances.append(await slot.start(["counter"], env=env))
        async with nginx(tmp, [s.port for s in instances], slot.cpu) as port:
            await asyncio.sleep(0.2)
            base = _count(counter)
            views = cfg.q(20, 60)
            for _ in range(views):
                sess = await open_session_and_pull(Target("127.0.0.1", port, "/counter"))
                await sess.close()
            await asyncio.sleep(0.5)
            runs = _count(counter) - base
        per_instance: dict[str, int] = {}
        for line in counter.read_text().splitlines() if counter.exists() else []:
            per_instance[line.split()[0]] = per_instance.get(line.split()[0], 0) + 1
        out.metrics["runs_per_view"] = round(runs / views, 3)
        out.info.update(views=views, runs=runs, runs_before_views=base, runs_by_pid=per_instance)
    finally:
        for s in instances:
            await stop(s)
        shutil.rmtree(tmp, ignore_errors=True)
    return out


SCENARIO = Scenario(
    name="S8",
    title="app runs per page view (nginx least_conn ×3)",
    measures=__doc__.split("\n\n")[0],
    metrics=(
        Metric(
            "runs_per_view",
            "app runs per page view, 3 instances behind nginx",
            "runs",
            "lower",
            Goal("abs", "<=", 1.0),
        ),
    ),
    run=run,
    budget_s=(60, 120),
)

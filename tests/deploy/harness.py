"""Run the shipped deployment configs for real: nginx and Apache as child processes.

A ``Deployment`` (the ``deployment`` fixture) owns one temporary directory (mode 0755, so
workers that drop root privileges can still reach it) and everything started for one
test: Aperture servers (through ``server_factory``), and nginx / apache2 rendered from
``deploy/`` templates into that directory and run in the foreground with their pid file,
logs and temp files inside it. ``ProxyProcess.start`` waits until every listening port
answers; ``stop`` sends SIGTERM to the PID, SIGKILL after a grace period, and sweeps the
process group the proxy was started in (it only holds processes started here). When a
test fails, the fixture prints the proxies' error logs and the servers' output.

``require_tool`` skips a test whose external program is missing, or fails it when
``CI=true``.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import functools
import grp
import http.client
import os
import pwd
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from deploy.render import render
from tests.support.browser import CHROMIUM_ARGS, BokehPage, require_chromium
from tests.support.processes import stop_group_leader
from tests.support.servers import APERTURE, REPO_ROOT, ServerProcess, free_port

NGINX = Path("/usr/sbin/nginx")
APACHE = Path("/usr/sbin/apache2")
APACHE_MODULES = Path("/usr/lib/apache2/modules")
OPENSSL = "openssl"
SYSTEMD_ANALYZE = "systemd-analyze"
T = TypeVar("T")
APP = REPO_ROOT / "tests" / "deploy" / "apps" / "button.py"
APP_PATH = "/button"
RUNS_ENV = "APERTURE_DEPLOY_RUNS_FILE"
# Instances relay websockets to each other only when they share BOKEH_SECRET_KEY (docs/security.md).
RELAY_KEY_ENV = "BOKEH_SECRET_KEY"
RELAY_KEY = "deploy-tests-shared-key-" + "z" * 24


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def require_tool(tool: str | os.PathLike[str], why: str = "") -> str:
    """The tool's path (a path, or a name looked up on PATH); else skip, or fail under ``CI=true``."""
    tool = os.fspath(tool)
    found = tool if os.path.isabs(tool) and os.access(tool, os.X_OK) else shutil.which(tool)
    if found:
        return found
    message = f"{tool} is not installed" + (f"; {why}" if why else "")
    if in_ci():
        pytest.fail(message + " (in CI a missing tool is a failure, not a skip)")
    pytest.skip(message)


# -- aperture ---------------------------------------------------------------------------------------


@functools.cache
def static_dir() -> str:
    """The BokehJS directory, as ``aperture static`` prints it."""
    program = [*APERTURE[:-1], "static"]  # `python -m aperture static`
    return subprocess.run(program, capture_output=True, text=True, check=True, timeout=60).stdout.strip()


# -- users the proxies' workers run as ------------------------------------------------------------


def current_user() -> tuple[str, str]:
    entry = pwd.getpwuid(os.getuid())
    return entry.pw_name, grp.getgrgid(entry.pw_gid).gr_name


def apache_account() -> tuple[str, str]:
    """Apache refuses to serve as root, so a root parent hands its children to www-data/nobody."""
    if os.getuid() != 0:
        return current_user()
    for name in ("www-data", "apache", "daemon", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return name, grp.getgrgid(entry.pw_gid).gr_name
    raise RuntimeError("no unprivileged account for Apache's children")


# -- proxies ---------------------------------------------------------------------------------------


class ProxyStartError(RuntimeError):
    pass


class ProxyProcess:
    """nginx or apache2 in the foreground, as our child, in its own process group."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        workdir: Path,
        ports: Sequence[int],
        error_log: Path,
        access_log: Path,
        start_timeout: float = 15.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.workdir = workdir
        self.ports = list(ports)
        self.error_log = error_log
        self.access_log = access_log
        self.output = workdir / f"{name}.out"
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.returncode: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None, f"{self.name} is not running"
        return self._proc.pid

    def start(self) -> ProxyProcess:
        with open(self.output, "wb") as out:
            self._proc = subprocess.Popen(
                self.command,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.start_timeout
        pending = list(self.ports)
        while pending:
            if self._exited():
                self.stop()
                raise ProxyStartError(f"{self.name} exited with code {self.returncode}\n{self.diagnostics()}")
            if time.monotonic() > deadline:
                self.stop()
                raise ProxyStartError(f"{self.name} did not listen on {pending}\n{self.diagnostics()}")
            if _answers(pending[0]):
                pending.pop(0)
            else:
                time.sleep(0.05)
        return self

    def stop(self) -> int | None:
        proc = self._proc
        if proc is None:
            return self.returncode
        self.returncode = stop_group_leader(proc, self.stop_timeout, running=not self._exited())
        self._proc = None
        return self.returncode

    def _exited(self) -> bool:
        assert self._proc is not None
        if self._proc.returncode is not None:
            return True
        info = os.waitid(os.P_PID, self._proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if info is None:
            return False
        self.returncode = info.si_status if info.si_code == os.CLD_EXITED else -info.si_status
        return True

    def access_lines(self) -> list[str]:
        return _read(self.access_log).splitlines()

    def wait_for_access(self, pattern: str, count: int = 1, timeout: float = 10.0) -> list[str]:
        """Wait until ``count`` or more access-log lines match ``pattern`` (a regex); return them.

        nginx and Apache log a websocket only once it has closed.
        """
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            found = [line for line in self.access_lines() if regex.search(line)]
            if found or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert found, f"no {self.name} access-log line matches {pattern!r}:\n" + "\n".join(
            self.access_lines()
        )
        return found

    def upstreams(self) -> collections.Counter[str]:
        """How often each upstream appears in the access log (``upstream=`` of the nginx format)."""
        return collections.Counter(re.findall(r"upstream=(\S+)", "\n".join(self.access_lines())))

    def diagnostics(self) -> str:
        return (
            f"--- {self.name}: {' '.join(self.command)}\n"
            f"--- {self.name} output ---\n{_read(self.output)}"
            f"--- {self.name} error log ({self.error_log}) ---\n{_read(self.error_log)}"
            f"--- {self.name} access log ---\n{_read(self.access_log)}"
            f"--- end of {self.name} ---\n"
        )


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "(no file)\n"


# -- a deployment: servers + proxies for one test --------------------------------------------------


@dataclass
class Deployment:
    server_factory: Callable[..., ServerProcess]
    workdir: Path
    servers: list[ServerProcess] = field(default_factory=list)
    proxies: list[ProxyProcess] = field(default_factory=list)

    def path(self, name: str) -> Path:
        return self.workdir / name

    def aperture(
        self,
        args: Sequence[str] = (),
        *,
        apps: Sequence[str | os.PathLike[str]] = (APP,),
        env: Mapping[str, str | None] | None = None,
        **kw: Any,
    ) -> ServerProcess:
        server = self.server_factory(list(apps), list(args), env=env, **kw)
        self.servers.append(server)
        return server

    def aperture_on_socket(
        self, socket_path: Path, args: Sequence[str] = (), *, timeout: float = 30.0, **kw: Any
    ) -> ServerProcess:
        """Aperture on ``--unix-socket``; ready once the socket accepts connections."""
        # No --port/--address with a unix socket; bokeh serve prints no "running at" line then.
        server = self.aperture(
            ["--unix-socket", str(socket_path), *args], address=None, port=None, ready_line="", **kw
        )
        deadline = time.monotonic() + timeout
        while True:
            assert server.running, f"aperture exited:\n{server.logs()}"
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.connect(str(socket_path))
                return server
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"{socket_path} never accepted a connection:\n{server.logs()}"
                    ) from None
                time.sleep(0.05)

    def nginx(self, template: str, ports: Sequence[int], **values: object) -> ProxyProcess:
        """Render ``deploy/<template>`` and run it with ``nginx -p <dir> -c <conf> -g 'daemon off;'``."""
        nginx = require_tool(NGINX, "the nginx deployment tests run it")
        prefix = self.workdir / f"nginx-{len(self.proxies)}"
        prefix.mkdir(mode=0o755)
        values.setdefault("nginx_user", current_user()[0])
        conf = prefix / "nginx.conf"
        conf.write_text(render(template, values), encoding="utf-8")
        command = [nginx, "-p", f"{prefix}/", "-e", str(prefix / "error.log"), "-c", str(conf)]
        command += ["-g", "daemon off;"]
        proxy = ProxyProcess("nginx", command, prefix, ports, prefix / "error.log", prefix / "access.log")
        self.proxies.append(proxy)
        return proxy.start()

    def apache(self, template: str, ports: Sequence[int], **values: object) -> ProxyProcess:
        """Render ``deploy/<template>`` and run it with ``apache2 -f <conf> -DFOREGROUND``."""
        apache = require_tool(APACHE, "the Apache deployment tests run it")
        root = self.workdir / f"apache-{len(self.proxies)}"
        root.mkdir(mode=0o755)
        user, group = apache_account()
        values.setdefault("server_root", root)
        values.setdefault("modules_dir", APACHE_MODULES)
        values.setdefault("apache_user", user)
        values.setdefault("apache_group", group)
        conf = root / "apache2.conf"
        conf.write_text(render(template, values), encoding="utf-8")
        proxy = ProxyProcess(
            "apache2",
            [apache, "-f", str(conf), "-DFOREGROUND"],
            root,
            ports,
            root / "error.log",
            root / "access.log",
        )
        self.proxies.append(proxy)
        return proxy.start()

    def nginx_balanced(self, runs: Path | None = None) -> tuple[ProxyProcess, list[ServerProcess]]:
        """Three Aperture instances behind ``nginx/load-balancer.conf``; app runs logged to ``runs``."""
        port = free_port()
        env = {RELAY_KEY_ENV: RELAY_KEY, **({RUNS_ENV: str(runs)} if runs else {})}
        servers = [self.aperture([allow_origin(port)], env=env) for _ in range(3)]
        backends = {f"backend{i}": f"127.0.0.1:{server.port}" for i, server in enumerate(servers, 1)}
        nginx = self.nginx("nginx/load-balancer.conf", [port], listen=f"127.0.0.1:{port}", **backends)
        return nginx, servers

    def stop_proxies(self) -> None:
        for proxy in reversed(self.proxies):
            proxy.stop()

    def diagnostics(self) -> str:
        parts = [proxy.diagnostics() for proxy in self.proxies]
        for server in self.servers:
            parts.append(f"--- aperture {server.command}\n{server.logs()}--- end of aperture ---\n")
        return "\n".join(parts)


@contextmanager
def deployment_dir() -> Iterator[Path]:
    """A fresh directory that unprivileged workers (nginx, Apache children) can traverse."""
    path = Path(tempfile.mkdtemp(prefix="aperture-deploy-"))
    try:
        path.chmod(0o755)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# -- clients ---------------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def http_get(
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    source_address: tuple[str, int] | None = None,
    timeout: float = 10.0,
) -> Response:
    """One GET without following redirects; TLS certificates are not checked (self-signed)."""
    scheme, rest = url.split("://", 1)
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.rpartition(":")
    conn: http.client.HTTPConnection
    if scheme == "https":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(
            host, int(port), timeout=timeout, source_address=source_address, context=context
        )
    else:
        conn = http.client.HTTPConnection(host, int(port), timeout=timeout, source_address=source_address)
    try:
        conn.request("GET", "/" + path, headers=dict(headers or {}))
        response = conn.getresponse()
        try:
            return Response(response.status, response.headers, response.read())
        finally:
            response.close()
    finally:
        conn.close()


def self_signed_certificate(directory: Path, password: str | None = None) -> tuple[Path, Path]:
    """A throw-away certificate for 127.0.0.1 made by ``openssl``; returns (cert, key).

    With ``password`` the private key is encrypted with it.
    """
    openssl = require_tool(OPENSSL, "the TLS tests make their certificate with it")
    cert, key = directory / "cert.pem", directory / "key.pem"
    protect = ["-passout", f"pass:{password}"] if password else ["-nodes"]
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            *protect, "-days", "2", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


def in_thread(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a fresh event loop in another thread.

    Playwright's sync API keeps an event loop running in the test's thread, so browser tests
    cannot ``asyncio.run`` there.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result(timeout=60)


@contextmanager
def launch_browser() -> Iterator[Any]:
    """The system Chromium like ``tests.support.browser.launch_chromium``, accepting self-signed TLS."""
    from playwright.sync_api import sync_playwright

    executable = require_chromium()
    with (
        tempfile.TemporaryDirectory(prefix="aperture-chromium-") as profile,
        sync_playwright() as playwright,
    ):
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=executable,
            headless=True,
            args=[*CHROMIUM_ARGS, "--ignore-certificate-errors"],
            ignore_https_errors=True,
            viewport={"width": 1200, "height": 900},
        )
        context.set_default_timeout(15_000)
        try:
            yield context
        finally:
            context.close()


# -- browser checks -------------------------------------------------------------------------------


def round_trip(page: BokehPage, url: str) -> None:
    """The page renders through the proxy and a click goes through Python and back."""
    page.open(url)
    painted = page.wait_for_painted_canvas()
    assert painted["width"] > 0
    assert page.model_value("result", "model.text") == "not clicked"
    page.view_element("button").wait_for_selector("button").click()
    page.wait_for_model("result", "model.text.startsWith('clicked 1 ')")
    assert page.view_text("result").startswith("clicked 1 ")
    page.assert_no_errors()


def close_page(page: BokehPage) -> None:
    """Close the page, so its websocket ends and the proxy writes the access-log line for it."""
    page.page.close()


def record_static(page: BokehPage) -> dict[str, dict[str, str]]:
    """Response headers of every ``/static/`` request the page makes from now on, by URL."""
    seen: dict[str, dict[str, str]] = {}

    def record(response: Any) -> None:
        if "/static/" in response.url:
            seen[response.url] = response.headers

    page.page.on("response", record)
    return seen


def allow_origin(port: int) -> str:
    """Pages come from the proxy, so that is the origin Aperture must accept websockets from."""
    return f"--allow-websocket-origin=127.0.0.1:{port}"


__all__ = [
    "APP",
    "APP_PATH",
    "RUNS_ENV",
    "Deployment",
    "ProxyProcess",
    "allow_origin",
    "close_page",
    "deployment_dir",
    "free_port",
    "http_get",
    "in_thread",
    "launch_browser",
    "record_static",
    "round_trip",
    "require_tool",
    "self_signed_certificate",
    "static_dir",
]

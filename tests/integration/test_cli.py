"""The `aperture` command line, run as `python -m aperture ...` subprocesses.

Every `bokeh serve` flag of the reference (shared/spec/cli.md §2) must parse; a flag whose feature is
not built yet (`pending` in `aperture.config.SETTINGS`) makes `serve` exit 1 with one stderr line naming
it, and every built flag starts a server. Bad values end the command with exit status 1 and one line
naming the flag and, where there is one, its environment variable.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from aperture.cli.main import build_parser
from aperture.options import SETTINGS
from tests.support.servers import READY_LINE, REPO_ROOT, ServerProcess

SECRET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQR"  # 44 characters, like `aperture secret`

# Every flag of `bokeh serve` 3.9.2, in the order of shared/spec/cli.md §2.
REFERENCE_FLAGS = (
    "--port",
    "--address",
    "--unix-socket",
    "--log-level",
    "--log-format",
    "--log-file",
    "--use-config",
    "--args",
    "--dev",
    "--show",
    "--allow-websocket-origin",
    "--prefix",
    "--ico-path",
    "--keep-alive",
    "--check-unused-sessions",
    "--unused-session-lifetime",
    "--stats-log-frequency",
    "--mem-log-frequency",
    "--use-xheaders",
    "--ssl-certfile",
    "--ssl-keyfile",
    "--session-ids",
    "--auth-module",
    "--enable-xsrf-cookies",
    "--exclude-headers",
    "--exclude-cookies",
    "--include-headers",
    "--include-cookies",
    "--cookie-secret",
    "--index",
    "--disable-index",
    "--disable-index-redirect",
    "--num-procs",
    "--session-token-expiration",
    "--websocket-max-message-size",
    "--websocket-compression-level",
    "--websocket-compression-mem-level",
    "--glob",
)

SETTING_OF_FLAG = {setting.flags[0]: setting for setting in SETTINGS}
PENDING_FLAGS = tuple(flag for flag in REFERENCE_FLAGS if SETTING_OF_FLAG[flag].pending)

# A value for each flag that takes one; `{tmp}` is a scratch directory holding the trivial app.
FLAG_VALUES: dict[str, tuple[str, ...]] = {
    "--port": ("0",),
    "--address": ("127.0.0.1",),
    "--unix-socket": ("{tmp}/aperture.sock",),
    "--log-level": ("debug",),
    "--log-format": ("%(levelname)s %(message)s",),
    "--log-file": ("{tmp}/server.log",),
    "--use-config": ("{tmp}/config.yaml",),
    "--args": ("one", "--two"),
    "--dev": (),
    "--show": (),
    "--allow-websocket-origin": ("example.com:8080",),
    "--prefix": ("/pfx",),
    "--ico-path": ("none",),
    "--keep-alive": ("0",),
    "--check-unused-sessions": ("1000",),
    "--unused-session-lifetime": ("1000",),
    "--stats-log-frequency": ("1000",),
    "--mem-log-frequency": ("1000",),
    "--use-xheaders": (),
    "--ssl-certfile": ("{tmp}/cert.pem",),
    "--ssl-keyfile": ("{tmp}/key.pem",),
    "--session-ids": ("signed",),
    "--auth-module": ("{tmp}/auth.py",),
    "--enable-xsrf-cookies": (),
    "--exclude-headers": ("X-Secret", "X-Other"),
    "--exclude-cookies": ("secret",),
    "--include-headers": ("User-Agent",),
    "--include-cookies": ("theme",),
    "--cookie-secret": ("cookie-secret-value",),
    "--index": ("{tmp}/index.html",),
    "--disable-index": (),
    "--disable-index-redirect": (),
    "--num-procs": ("1",),
    "--session-token-expiration": ("60",),
    "--websocket-max-message-size": ("100000",),
    "--websocket-compression-level": ("6",),
    "--websocket-compression-mem-level": ("8",),
    "--glob": (),
}


def clean_env(overrides: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """The test's environment without any BOKEH_* variable, plus `overrides` (None removes)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOKEH_")}
    env["PYTHONUNBUFFERED"] = "1"
    for key, value in (overrides or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def server_env(overrides: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """ServerProcess `env` overrides: every BOKEH_* variable of the test's environment removed."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("BOKEH_")}
    env.update(overrides or {})
    return env


def aperture(
    *args: str, env: Mapping[str, str | None] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run `python -m aperture ARGS` until it exits.

    A server that starts serving instead (its ready line appears) is killed at once and reported
    with returncode None, so a bad value that is wrongly accepted fails fast instead of hanging.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "aperture", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=REPO_ROOT,
        env=clean_env(env),
        start_new_session=True,
    )
    assert process.stdout is not None and process.stderr is not None
    stdout: list[str] = []
    drain = threading.Thread(target=lambda: stdout.append(process.stdout.read()), daemon=True)  # type: ignore[union-attr]
    drain.start()
    watchdog = threading.Timer(timeout, process.kill)
    watchdog.start()
    stderr: list[str] = []
    started = False
    try:
        for line in process.stderr:
            stderr.append(line)
            if READY_LINE in line:
                started = True
                os.killpg(process.pid, signal.SIGKILL)
                break
        code = process.wait(timeout)
    finally:
        watchdog.cancel()
        drain.join(10)
        process.stdout.close()
        process.stderr.close()
    return subprocess.CompletedProcess(
        process.args, None if started else code, "".join(stdout), "".join(stderr)
    )


def one_error_line(result: subprocess.CompletedProcess[str], *names: str) -> str:
    """Assert exit status 1 and exactly one stderr line that names every one of `names`."""
    exit = "started serving instead of exiting" if result.returncode is None else f"exit {result.returncode}"
    output = f"{exit}\nstdout: {result.stdout!r}\nstderr: {result.stderr!r}"
    assert result.returncode == 1, output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, output
    assert "Traceback" not in result.stderr, output
    for name in names:
        assert name in lines[0], f"{name!r} not named in {lines[0]!r}"
    return lines[0]


def get_status(url: str, context: ssl.SSLContext | None = None) -> int:
    try:
        with urllib.request.urlopen(url, timeout=20, context=context) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as error:
        with error:
            return int(error.code)


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch directory with a trivial app and the files some flags point at."""
    root = tmp_path_factory.mktemp("cli")
    (root / "app.py").write_text(
        "from bokeh.io import curdoc\nfrom bokeh.models import Div\ncurdoc().add_root(Div(text='hi'))\n"
    )
    (root / "index.html").write_text("{% for item in items %}<a href='{{ prefix }}{{ item }}'></a>{% end %}")
    (root / "config.yaml").write_text("log_level: debug\n")
    (root / "auth.py").write_text(
        "def get_user(request_handler):\n    return 'someone'\n\nlogin_url = '/login'\n"
    )
    (root / "cert.pem").write_text("not a certificate\n")
    (root / "key.pem").write_text("not a key\n")
    return root


def values(flag: str, tmp: Path) -> list[str]:
    return [v.replace("{tmp}", str(tmp)) for v in FLAG_VALUES[flag]]


# -- other subcommands and help -------------------------------------------------------------------


def test_secret_prints_a_44_character_key():
    result = aperture("secret")
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"[A-Za-z0-9]{44}\n", result.stdout), result.stdout
    assert aperture("secret").stdout != result.stdout


def test_static_prints_the_bokehjs_directory():
    result = aperture("static")
    assert result.returncode == 0, result.stderr
    directory = Path(result.stdout.strip())
    assert directory.is_dir() and (directory / "js" / "bokeh.min.js").is_file(), result.stdout


@pytest.mark.parametrize(
    "args",
    [("--help",), ("serve", "--help"), ("secret", "--help"), ("static", "--help")],
    ids=["aperture", "serve", "secret", "static"],
)
def test_help(args):
    result = aperture(*args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: aperture"), result.stdout
    if args[0] == "serve":
        for flag in REFERENCE_FLAGS:
            assert flag in result.stdout, f"{flag} missing from `serve --help`"


def test_version_and_no_command():
    version = aperture("--version")
    assert version.returncode == 0 and re.fullmatch(r"\d+\.\d+\.\d+\S*\n", version.stdout), version
    bare = aperture()
    assert bare.returncode == 2 and "serve" in bare.stderr, bare


def test_docs_cli_md_is_up_to_date():
    generated = subprocess.run(
        [sys.executable, "-m", "aperture.cli.docs"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO_ROOT,
        env=clean_env(),
        check=True,
    ).stdout
    committed = (REPO_ROOT / "docs" / "cli.md").read_text()
    assert committed == generated, "docs/cli.md is out of date with `aperture --help`: run `make docs`"


# -- every reference flag parses ---------------------------------------------------------------------


def test_every_reference_flag_is_a_serve_flag():
    serve = next(a for a in build_parser()._actions if a.dest == "command").choices["serve"]  # type: ignore[union-attr]
    ours = {opt for action in serve._actions for opt in action.option_strings} - {"-h", "--help"}
    assert set(REFERENCE_FLAGS) <= ours, set(REFERENCE_FLAGS) - ours
    assert set(REFERENCE_FLAGS) <= {s.flags[0] for s in SETTINGS}
    assert set(FLAG_VALUES) == set(REFERENCE_FLAGS)


@pytest.mark.parametrize("flag", REFERENCE_FLAGS)
def test_flag_is_accepted_by_the_parser(flag, tmp):
    args = build_parser().parse_args(["serve", str(tmp / "app.py"), flag, *values(flag, tmp)])
    setting = SETTING_OF_FLAG[flag]
    parsed = getattr(args, setting.name)
    assert parsed is not None and parsed is not False, (flag, parsed)
    assert args.apps == [str(tmp / "app.py")]


@pytest.mark.parametrize("flag", PENDING_FLAGS)
def test_flag_not_built_yet_is_refused_with_one_line(flag, tmp):
    result = aperture("serve", str(tmp / "app.py"), "--port", "0", flag, *values(flag, tmp))
    line = one_error_line(result, flag)
    assert "aperture: error:" in line
    env_var = SETTING_OF_FLAG[flag].env
    if env_var is not None and SETTING_OF_FLAG[flag].kind != "bool":  # the variable asks for it too
        from_env = aperture("serve", str(tmp / "app.py"), "--port", "0", env={env_var: str(tmp / "x")})
        one_error_line(from_env, flag, env_var)


def test_boolean_environment_variable_set_to_no_starts_the_server(tmp):
    env = server_env({"BOKEH_XSRF_COOKIES": "no", "BOKEH_SIGN_SESSIONS": "off"})
    with ServerProcess([tmp / "app.py"], env=env, attempts=1) as server:
        assert get_status(server.url("/app")) == 200


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(None, id="missing-file"),
        pytest.param("def get_user(request_handler):\n    return 'x'\n", id="get-user-without-login-url"),
    ],
)
def test_bad_auth_module_exits_1_with_one_line(tmp, source):
    module = tmp / f"auth_{'missing' if source is None else 'no_login'}.py"
    if source is not None:
        module.write_text(source)
    one_error_line(
        aperture("serve", str(tmp / "app.py"), "--port", "0", "--auth-module", str(module)), "--auth-module"
    )


# -- every built flag starts a server ------------------------------------------------------------------


@dataclass
class StartCase:
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    apps: list[str] = field(default_factory=lambda: ["{tmp}/app.py"])
    path: str = "/app"
    status: int = 200
    scheme: str = "http"  # "http", "https" or "unix"
    needs_certificate: bool = False


def start_case(flag: str, tmp: Path) -> StartCase:
    args = [flag, *values(flag, tmp)]
    if flag == "--port":
        return StartCase([])  # ServerProcess passes --port <free port> itself
    if flag == "--unix-socket":
        return StartCase([flag, str(tmp / "flag-test.sock")], scheme="unix")
    if flag in ("--ssl-certfile", "--ssl-keyfile"):
        tls = ["--ssl-certfile", str(tmp / "tls-cert.pem"), "--ssl-keyfile", str(tmp / "tls-key.pem")]
        return StartCase(tls, scheme="https", needs_certificate=True)
    if flag == "--dev":
        return StartCase(["--dev", str(tmp / "index.html")])
    if flag == "--prefix":
        return StartCase(args, path="/pfx/app")
    if flag == "--session-ids":
        return StartCase(args, env={"BOKEH_SECRET_KEY": SECRET})
    if flag == "--show":
        return StartCase(args, env={"BOKEH_BROWSER": "true %s"})  # a "browser" that does nothing
    if flag == "--glob":
        return StartCase(args, apps=["{tmp}/ap*.py"])
    if flag == "--websocket-compression-mem-level":
        return StartCase(["--websocket-compression-level", "6", *args])
    return StartCase(args)


BUILT_FLAGS = tuple(f for f in REFERENCE_FLAGS if f not in PENDING_FLAGS and f != "--log-file")


def make_certificate(tmp: Path) -> str | None:
    """A self-signed localhost certificate and key in `tmp`; None, or why it could not be made."""
    if (tmp / "tls-cert.pem").exists():
        return None
    if shutil.which("openssl") is None:
        return "openssl is not installed"
    result = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost"]
        + ["-keyout", str(tmp / "tls-key.pem"), "-out", str(tmp / "tls-cert.pem")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return None if result.returncode == 0 else f"openssl failed: {result.stderr}"


def unix_get_status(path: Path, url_path: str, timeout: float = 20) -> int:
    """GET `url_path` over the Unix socket at `path`; the HTTP status."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        while True:
            try:
                sock.connect(str(path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        sock.sendall(f"GET {url_path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        head = b""
        while b"\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    return int(head.split()[1])


# Flags that only set a value and cannot get in each other's way share one server (every start
# costs a Python + Bokeh start-up); a failure names the whole group.
SHARED_SERVERS = (
    (
        "--keep-alive",
        "--check-unused-sessions",
        "--unused-session-lifetime",
        "--stats-log-frequency",
        "--mem-log-frequency",
    ),
    ("--use-xheaders", "--cookie-secret", "--session-token-expiration", "--websocket-max-message-size"),
    ("--exclude-headers", "--include-cookies"),
    ("--include-headers", "--exclude-cookies"),
)


def start_jobs(tmp: Path) -> dict[tuple[str, ...], StartCase]:
    """The servers to start: one per built flag, except the groups above that share one."""
    jobs: dict[tuple[str, ...], StartCase] = {}
    grouped: set[str] = set()
    for group in SHARED_SERVERS:
        built = tuple(flag for flag in group if flag in BUILT_FLAGS)
        if built:
            jobs[built] = StartCase([arg for flag in built for arg in start_case(flag, tmp).args])
            grouped.update(built)
    for flag in BUILT_FLAGS:
        if flag not in grouped:
            jobs[(flag,)] = start_case(flag, tmp)
    return jobs


def _try_start(case: StartCase, tmp: Path) -> str | None:
    """Start a server for `case`, fetch the app page; None if all went well, else what went wrong."""
    if case.needs_certificate and not (tmp / "tls-cert.pem").exists():
        return f"no certificate to test with ({make_certificate(tmp)})"
    apps = [a.replace("{tmp}", str(tmp)) for a in case.apps]
    unix = case.scheme == "unix"
    server = ServerProcess(
        apps,
        case.args,
        env=server_env(case.env),
        start_timeout=60,
        address=None if unix else "127.0.0.1",
        # a Unix socket has no URL to print; Aperture says it started once it is listening
        ready_line="Starting Aperture" if unix else READY_LINE,
    )
    try:
        server.start()
        if unix:
            status = unix_get_status(Path(case.args[1]), case.path)
        elif case.scheme == "https":
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            status = get_status(f"https://127.0.0.1:{server.port}{case.path}", context)
        else:
            status = get_status(server.url(case.path))
        if status != case.status:
            return f"GET {case.path} answered {status}\n{server.logs()}"
        return None
    except Exception as exc:  # reported per flag by the test below
        return f"{type(exc).__name__}: {exc}\n{server.logs()}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def started(tmp: Path) -> dict[str, str | None]:
    """Start the servers of `start_jobs`, a few at a time; what went wrong for each flag, or None."""
    jobs = start_jobs(tmp)
    if any(case.needs_certificate for case in jobs.values()):
        make_certificate(tmp)
    with ThreadPoolExecutor(max_workers=3) as pool:
        outcomes = list(pool.map(lambda case: _try_start(case, tmp), jobs.values()))
    results: dict[str, str | None] = {}
    for flags, outcome in zip(jobs, outcomes, strict=True):
        for flag in flags:
            results[flag] = None if outcome is None else f"server with {' '.join(flags)}: {outcome}"
    return results


@pytest.mark.parametrize("flag", BUILT_FLAGS)
def test_built_flag_starts_a_server(flag, started):
    assert started[flag] is None, started[flag]


def test_log_file_receives_the_log_instead_of_stderr(tmp):
    log_file = tmp / "server-log-file.log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aperture",
            "serve",
            str(tmp / "app.py"),
            "--port",
            "0",
            "--address",
            "127.0.0.1",
        ]
        + ["--log-file", str(log_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=REPO_ROOT,
        env=clean_env(),
    )
    try:
        deadline = time.monotonic() + 30
        text = ""
        while READY_LINE not in text:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, f"no ready line in {log_file}: {text!r}"
            time.sleep(0.1)
            text = log_file.read_text() if log_file.exists() else ""
        port = int(re.search(r"Bokeh app running at: http://127\.0\.0\.1:(\d+)/app", text).group(1))  # type: ignore[union-attr]
        assert get_status(f"http://127.0.0.1:{port}/app") == 200
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=20)
    assert READY_LINE not in stderr


# -- bad values: one line naming the flag and its environment variable -------------------------------


@pytest.mark.parametrize(
    ("args", "env", "names"),
    [
        pytest.param(["--keep-alive", "-1"], {}, ["--keep-alive"], id="keep-alive-negative"),
        pytest.param(
            ["--check-unused-sessions", "0"], {}, ["--check-unused-sessions"], id="check-unused-zero"
        ),
        pytest.param(
            ["--unused-session-lifetime", "0"], {}, ["--unused-session-lifetime"], id="lifetime-zero"
        ),
        pytest.param(["--stats-log-frequency", "0"], {}, ["--stats-log-frequency"], id="stats-zero"),
        pytest.param(["--mem-log-frequency", "-1"], {}, ["--mem-log-frequency"], id="mem-log-negative"),
        pytest.param(
            ["--session-token-expiration", "0"],
            {},
            ["--session-token-expiration"],
            id="token-expiration-zero",
        ),
        pytest.param(
            ["--websocket-max-message-size", "0"],
            {},
            ["--websocket-max-message-size"],
            id="max-message-size-zero",
        ),
        pytest.param(["--port", "70000"], {}, ["--port"], id="port-too-big"),
        pytest.param(["--ico-path", "x.png"], {}, ["--ico-path", "BOKEH_ICO_PATH"], id="ico-path-not-ico"),
        pytest.param([], {"BOKEH_ICO_PATH": "x.png"}, ["--ico-path", "BOKEH_ICO_PATH"], id="ico-path-env"),
        pytest.param(
            ["--include-headers", "A", "--exclude-headers", "B"],
            {},
            ["--include-headers", "--exclude-headers"],
            id="include-and-exclude-headers",
        ),
        pytest.param(
            ["--include-cookies", "a", "--exclude-cookies", "b"],
            {},
            ["--include-cookies", "--exclude-cookies"],
            id="include-and-exclude-cookies",
        ),
        pytest.param(
            ["--session-ids", "signed"], {}, ["--session-ids", "BOKEH_SECRET_KEY"], id="signed-without-key"
        ),
        pytest.param(
            ["--session-ids", "external-signed"],
            {},
            ["--session-ids", "BOKEH_SECRET_KEY"],
            id="external-signed-without-key",
        ),
        pytest.param(
            [],
            {"BOKEH_SIGN_SESSIONS": "yes"},
            ["BOKEH_SIGN_SESSIONS", "BOKEH_SECRET_KEY"],
            id="sign-env-without-key",
        ),
        pytest.param(
            [],
            {"BOKEH_SIGN_SESSIONS": "maybe"},
            ["--session-ids", "BOKEH_SIGN_SESSIONS"],
            id="sign-sessions-maybe",
        ),
        pytest.param(
            ["--allow-websocket-origin", ":80"],
            {},
            ["--allow-websocket-origin", "BOKEH_ALLOW_WS_ORIGIN"],
            id="origin-empty-host",
        ),
        pytest.param(
            [], {"BOKEH_PY_LOG_LEVEL": "loud"}, ["--log-level", "BOKEH_PY_LOG_LEVEL"], id="log-level-env"
        ),
        pytest.param(["--num-procs", "-1"], {}, ["--num-procs"], id="num-procs-negative"),
        pytest.param(
            ["--websocket-compression-level", "99"],
            {},
            ["--websocket-compression-level"],
            id="compression-level-out-of-range",
        ),
        pytest.param(["--dev"], {}, ["--dev"], id="dev-with-two-apps"),
        pytest.param(
            [],
            {"BOKEH_DEFAULT_SERVER_PORT": "abc"},
            ["BOKEH_DEFAULT_SERVER_PORT"],
            id="default-port-env-not-a-number",
        ),
    ],
)
def test_bad_value_exits_1_with_one_line_naming_it(args, env, names, tmp):
    apps = [str(tmp / "app.py")]
    if "--dev" in args:
        apps.append(str(REPO_ROOT / "tests" / "apps" / "demo.py"))
    result = aperture("serve", *apps, "--port", "0", *args, env=env)
    one_error_line(result, *names)


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--keep-alive", "abc"], id="int-flag-not-a-number"),
        pytest.param(["--session-ids", "sometimes"], id="bad-session-ids-choice"),
        pytest.param(["--log-level", "loud"], id="bad-log-level-choice"),
    ],
)
def test_syntax_errors_on_the_command_line_exit_2_naming_the_flag(args, tmp):
    result = aperture("serve", str(tmp / "app.py"), *args)
    assert result.returncode == 2, result
    assert args[0] in result.stderr.strip().splitlines()[-1]


def test_sign_sessions_no_means_no_signing(tmp):
    env = server_env({"BOKEH_SIGN_SESSIONS": "no"})
    with ServerProcess([tmp / "app.py"], env=env, attempts=1) as server:
        with urllib.request.urlopen(server.url("/app"), timeout=20) as response:
            page = response.read().decode()
    token = re.search(r'"token":"([^"]+)"', page).group(1)  # type: ignore[union-attr]
    assert "." not in token  # an unsigned token has no signature part


# -- apps that cannot be served --------------------------------------------------------------------------


def test_missing_app_path_exits_1_naming_it(tmp):
    missing = tmp / "no_such_app.py"
    one_error_line(aperture("serve", str(missing), "--port", "0"), str(missing))


def test_text_file_app_exits_1(tmp):
    notes = tmp / "notes.txt"
    notes.write_text("hello\n")
    one_error_line(aperture("serve", str(notes), "--port", "0"), "notes.txt")


def test_syntax_error_in_an_app_exits_1_mentioning_the_file(tmp):
    script = tmp / "bad_syntax.py"
    script.write_text("def broken(:\n    pass\n")
    result = aperture("serve", str(script), "--port", "0")
    assert result.returncode == 1, result
    assert str(script) in result.stderr.splitlines()[0], result.stderr
    assert "SyntaxError" in result.stderr or "invalid syntax" in result.stderr


def test_port_in_use_exits_1_naming_the_port(tmp):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        result = aperture("serve", str(tmp / "app.py"), "--port", port, "--address", "127.0.0.1")
    one_error_line(result, port)


# -- start-up output ---------------------------------------------------------------------------------


def _ready_url(server: ServerProcess, path: str) -> str:
    pattern = r"Bokeh app running at: (http://127\.0\.0\.1:(\d+)" + re.escape(path) + r")\s"
    match = re.search(pattern, server.stderr())
    assert match, server.logs()
    assert match.group(2) != "0"
    return match.group(1)


@pytest.mark.parametrize(
    ("args", "path"),
    [pytest.param([], "/app", id="no-prefix"), pytest.param(["--prefix", "/pfx"], "/pfx/app", id="prefix")],
)
def test_port_0_prints_the_real_port_and_the_prefix(server_factory, tmp, args, path):
    server = server_factory([tmp / "app.py"], ["--port", "0", *args], port=None, env=server_env())
    url = _ready_url(server, path)
    assert get_status(url) == 200

"""`--auth-module`: validation, which endpoints it guards, login/logout handlers, cookie secret, XSRF.

The contract is the one of `bokeh serve` (shared/spec/auth-security.md §1-3) with Aperture's
deliberate differences: a directory app's `static/` files are guarded too, an anonymous websocket
is closed with 1008 "authentication required" (no traceback), and `autoload.js` answers the login
redirect cleanly. Most tests use small auth modules written to a temporary directory whose
`get_user` reads a *plain* cookie `user`; the secure-cookie/XSRF tests use `examples/auth/auth.py`.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import Message
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import REPO_ROOT, ServerProcess
from tests.support.wsclient import BokehClient, fetch_token, ws_url

APPS = "tests/apps"
EXAMPLE = REPO_ROOT / "examples" / "auth"
ALICE = {"Cookie": "user=alice"}
COOKIE_SECRET = "test-cookie-secret-0123456789-abcdefghijklmnop"

# -- auth modules and apps written to a temporary directory ----------------------------------------

COOKIE_AUTH = """
    from tornado.web import RequestHandler

    def get_user(request_handler):
        return request_handler.get_cookie("user")

    login_url = "/login"

    class LoginHandler(RequestHandler):
        def get(self):
            self.write("login form; next=" + self.get_argument("next", ""))

        def post(self):
            self.set_cookie("user", self.get_argument("name", "alice"))
            self.write("logged in")

    logout_url = "/logout"

    class LogoutHandler(RequestHandler):
        def get(self):
            self.clear_cookie("user")
            self.write("logged out")
"""

ASYNC_AUTH = """
    import asyncio

    async def get_user_async(request_handler):
        await asyncio.sleep(0)
        return request_handler.get_cookie("user")

    login_url = "/login"
"""

IDP_AUTH = """
    def get_user(request_handler):
        return request_handler.get_cookie("user")

    def get_login_url(request_handler):
        if request_handler.request.path.endswith("/metadata"):
            return "https://idp.example/sso?app=metadata"  # already has a query: used as is
        return "https://idp.example/sso"
"""

NO_USER_AUTH = """
    from tornado.web import RequestHandler

    login_url = "/login"

    class LoginHandler(RequestHandler):
        def get(self):
            self.write("mounted without a user function")
"""

# Shows what the session sees: the prefix-joined logout_url and the user cookie.
WHOAMI_APP = """
    from bokeh.io import curdoc
    from bokeh.models import Div

    context = curdoc().session_context
    user = context.request.cookies.get("user")
    curdoc().add_root(Div(text=f"logout={context.logout_url} user={user}", name="whoami"))
"""


def write(directory: Path, name: str, source: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(source))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("auth")
    return {
        "cookie": write(directory, "cookie_auth.py", COOKIE_AUTH),
        "async": write(directory, "async_auth.py", ASYNC_AUTH),
        "idp": write(directory, "idp_auth.py", IDP_AUTH),
        "no_user": write(directory, "no_user_auth.py", NO_USER_AUTH),
        "whoami": write(directory, "whoami.py", WHOAMI_APP),
    }


# -- HTTP helpers ----------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: Message
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    @property
    def location(self) -> str | None:
        return self.headers.get("Location")

    def cookies(self) -> dict[str, str]:
        jar: SimpleCookie = SimpleCookie()
        for value in self.headers.get_all("Set-Cookie") or []:
            jar.load(value)
        return {name: morsel.value for name, morsel in jar.items()}


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def http(
    url: str,
    headers: dict[str, str] | None = None,
    method: str = "GET",
    data: dict[str, str] | None = None,
) -> Response:
    """One request, redirects not followed, any status returned (responses always closed)."""
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=20) as response:
            return Response(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        with error:
            return Response(error.code, error.headers, error.read())


def login_redirect(path: str, login: str = "/login") -> str:
    return login + "?" + urllib.parse.urlencode({"next": path})


async def pull_text(url: str, name: str, headers: dict[str, str]) -> str:
    """Open a session on the page at `url` (with `headers`), pull it over the websocket, read a Div."""
    token = fetch_token(url, headers=headers)
    client = await BokehClient.connect(ws_url(url), token, headers=headers)
    try:
        doc = (await client.pull()).content["doc"]
    finally:
        await client.close()
    texts = [r["attributes"]["text"] for r in _walk_models(doc) if r["attributes"].get("name") == name]
    assert texts, f"no Div named {name!r}"
    return str(texts[0])


def _walk_models(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if node.get("type") == "object" and isinstance(node.get("attributes"), dict):
            found.append(node)
        for value in node.values():
            found += _walk_models(value)
    elif isinstance(node, list):
        for value in node:
            found += _walk_models(value)
    return found


async def closed_anonymously(
    url: str, headers: dict[str, str] | None = None
) -> tuple[int | None, str | None]:
    """Take a token from an authenticated page fetch, then open the websocket without the cookie."""
    token = fetch_token(url, headers=ALICE)
    client = await BokehClient.connect(ws_url(url), token, headers=headers or {}, wait_ack=False)
    closed = await client.closed()
    return closed.code, closed.reason


# -- 1. validation of the module (§1.1): exit 1, one line naming --auth-module --------------------

ROOT = "from tornado.web import RequestHandler\n"
INVALID_MODULES: dict[str, tuple[str, str]] = {
    # case: (module source, expected message, lower-cased)
    "both user functions": (
        "def get_user(h): return None\nasync def get_user_async(h): return None\nlogin_url = '/login'\n",
        "only one of get_user or get_user_async should be supplied",
    ),
    "get_user without login": (
        "def get_user(h): return None\n",
        "one of login_url or get_login_url must be supplied",
    ),
    "get_user_async without login": (
        "async def get_user_async(h): return None\n",
        "one of login_url or get_login_url must be supplied",
    ),
    "both login urls": (
        "def get_user(h): return None\nlogin_url = '/login'\ndef get_login_url(h): return '/x'\n",
        "at most one of login_url or get_login_url should be supplied",
    ),
    "LoginHandler with get_login_url": (
        ROOT + "def get_user(h): return None\ndef get_login_url(h): return '/x'\n"
        "class LoginHandler(RequestHandler): pass\n",
        "loginhandler cannot be used with a get_login_url() function",
    ),
    "LoginHandler not a RequestHandler": (
        "def get_user(h): return None\nlogin_url = '/login'\nclass LoginHandler: pass\n",
        "loginhandler must be a tornado requesthandler",
    ),
    "LoginHandler not a class": (
        "def get_user(h): return None\nlogin_url = '/login'\nLoginHandler = 'nope'\n",
        "loginhandler",
    ),
    "absolute https login_url": (
        ROOT + "def get_user(h): return None\nlogin_url = 'https://idp.example/login'\n"
        "class LoginHandler(RequestHandler): pass\n",
        "loginhandler can only be used with a relative login_url",
    ),
    "protocol-relative login_url without handler": (
        "def get_user(h): return None\nlogin_url = '//idp.example/login'\n",
        "loginhandler can only be used with a relative login_url",
    ),
    "absolute http login_url": (
        "def get_user(h): return None\nlogin_url = 'http://idp.example/login'\n",
        "loginhandler can only be used with a relative login_url",
    ),
    "LogoutHandler not a RequestHandler": (
        "def get_user(h): return None\nlogin_url = '/login'\nlogout_url = '/logout'\nclass LogoutHandler: pass\n",
        "logouthandler must be a tornado requesthandler",
    ),
    "absolute logout_url": (
        "def get_user(h): return None\nlogin_url = '/login'\nlogout_url = 'https://idp.example/logout'\n",
        "logouthandler can only be used with a relative logout_url",
    ),
    # Rule order (first failing rule wins): 6 (relative login_url) is checked before 7 (LogoutHandler).
    "rule 6 before rule 7": (
        "def get_user(h): return None\nlogin_url = 'https://idp.example/login'\n"
        "logout_url = '/logout'\nclass LogoutHandler: pass\n",
        "loginhandler can only be used with a relative login_url",
    ),
    "module raises": (
        "raise RuntimeError('boom from the auth module')\n",
        "boom from the auth module",
    ),
    "syntax error": ("def get_user(:\n", "--auth-module"),
    "missing file": ("", "no file exists at"),
}


@dataclass
class Run:
    path: Path
    returncode: int | None
    stderr: str


def run_serve(path: Path) -> Run:
    command = [sys.executable, "-m", "aperture", "serve", f"{APPS}/demo.py", "--port", "0"]
    command += ["--address", "127.0.0.1", "--auth-module", str(path)]
    try:
        done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired as expired:  # it started serving: killed by run()
        stderr = expired.stderr.decode() if isinstance(expired.stderr, bytes) else expired.stderr or ""
        return Run(path, None, stderr)
    return Run(path, done.returncode, done.stderr)


@pytest.fixture(scope="module")
def invalid_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Every invalid module, run once (in parallel) for all the validation tests."""
    directory = tmp_path_factory.mktemp("invalid")
    paths = {}
    for index, (case, (source, _)) in enumerate(INVALID_MODULES.items()):
        path = directory / f"auth_{index}.py"
        if case != "missing file":
            path.write_text(source)
        paths[case] = path
    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = dict(zip(paths, pool.map(run_serve, paths.values()), strict=True))
    return runs


@pytest.mark.parametrize("case", list(INVALID_MODULES))
def test_invalid_auth_module_exits_1_naming_the_flag(invalid_runs: dict[str, Run], case: str) -> None:
    run = invalid_runs[case]
    expected = INVALID_MODULES[case][1]
    assert run.returncode == 1, f"{case}: exit status {run.returncode}\n{run.stderr}"
    assert "Bokeh app running at" not in run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert "--auth-module" in last, last
    assert expected in last.lower(), last
    if case == "missing file":
        assert str(run.path) in last


def test_invalid_auth_module_error_is_one_line_without_traceback(invalid_runs: dict[str, Run]) -> None:
    bad = {}
    for case, run in invalid_runs.items():
        lines = [line for line in run.stderr.splitlines() if line.strip()]
        if len(lines) != 1 or "Traceback" in run.stderr or "--auth-module" not in lines[0]:
            bad[case] = run.stderr
    assert not bad, "\n\n".join(f"--- {case}:\n{stderr}" for case, stderr in bad.items())


def test_module_without_user_function_serves_without_auth_but_mounts_handlers(
    server_factory: Any, files: dict[str, Path]
) -> None:
    server = server_factory([f"{APPS}/demo.py"], ["--auth-module", str(files["no_user"])])
    assert http(server.url("/demo")).status == 200
    assert http(server.url("/demo/metadata")).status == 200
    login = http(server.url("/login"))
    assert login.status == 200 and login.text == "mounted without a user function"


def test_auth_module_from_the_environment(server_factory: Any, files: dict[str, Path]) -> None:
    server = server_factory([f"{APPS}/demo.py"], env={"BOKEH_AUTH_MODULE": str(files["cookie"])})
    response = http(server.url("/demo"))
    assert response.status == 302 and response.location == login_redirect("/demo")
    assert http(server.url("/demo"), ALICE).status == 200


# -- 2. what get_user guards (plain cookie module, no prefix) ----------------------------------------


@pytest.fixture(scope="module")
def server(module_server_factory: Any, files: dict[str, Path]) -> ServerProcess:
    apps = [f"{APPS}/demo.py", f"{APPS}/dirapp", files["whoami"]]
    return module_server_factory(apps, ["--auth-module", str(files["cookie"])])


@pytest.fixture(scope="module")
def prefixed(module_server_factory: Any, files: dict[str, Path]) -> ServerProcess:
    apps = [f"{APPS}/demo.py", files["whoami"]]
    return module_server_factory(apps, ["--auth-module", str(files["cookie"]), "--prefix", "/pre"])


@pytest.mark.parametrize(
    "path",
    [
        "/demo",
        "/demo/",
        "/demo/metadata",
        "/",
        "/dirapp",
        "/dirapp/static/style.css",
        "/demo/autoload.js?bokeh-autoload-element=el1",
    ],
)
def test_anonymous_get_redirects_to_login_with_next(server: ServerProcess, path: str) -> None:
    response = http(server.url(path))
    assert response.status == 302, response.text
    assert response.location == login_redirect(path)


def test_anonymous_head_and_post(server: ServerProcess) -> None:
    static = "/dirapp/static/style.css"
    head = http(server.url(static), method="HEAD")
    assert head.status == 302 and head.location == login_redirect(static)
    assert http(server.url(static), method="POST", data={}).status == 403  # not GET/HEAD: no redirect
    for path in ("/demo", "/demo/metadata"):
        assert http(server.url(path), method="HEAD").status == 405, path  # as in the reference


def test_anonymous_post_to_a_page_is_405_like_the_reference(server: ServerProcess) -> None:
    assert http(server.url("/demo"), method="POST", data={}).status == 405


def test_empty_user_cookie_is_anonymous(server: ServerProcess) -> None:
    response = http(server.url("/demo"), {"Cookie": "user="})
    assert response.status == 302 and response.location == login_redirect("/demo")


def test_autoload_redirect_logs_no_traceback(server: ServerProcess) -> None:
    marker = "/demo/autoload.js?bokeh-autoload-element=traceback-check"
    response = http(server.url(marker))
    assert response.status == 302
    time.sleep(0.3)  # anything the handler logs after answering would be written by now
    assert "Traceback" not in server.logs()
    assert not re.search(r"\bERROR\b", server.logs())


def test_autoload_preflight_needs_no_auth(server: ServerProcess) -> None:
    url = server.url("/demo/autoload.js")
    origin = {"Origin": "http://embedder.example", "Access-Control-Request-Method": "GET"}
    response = http(url, origin, method="OPTIONS")
    assert response.status == 200
    assert "GET" in response.headers["Access-Control-Allow-Methods"]
    assert http(url, method="OPTIONS").status == 200  # no Origin: the reference answers 500 here


def test_with_the_cookie_every_app_endpoint_answers(server: ServerProcess) -> None:
    assert http(server.url("/demo"), ALICE).status == 200
    assert http(server.url("/demo/metadata"), ALICE).text == '{"url": "/demo", "data": {}}'
    autoload = http(server.url("/demo/autoload.js?bokeh-autoload-element=el1"), ALICE)
    assert autoload.status == 200 and '"token":' in autoload.text
    index = http(server.url("/"), ALICE)
    assert index.status == 200 and 'href="/demo"' in index.text
    css = http(server.url("/dirapp/static/style.css"), ALICE)
    assert css.status == 200
    assert css.body == (REPO_ROOT / APPS / "dirapp" / "static" / "style.css").read_bytes()


def test_bokehjs_static_files_and_favicon_stay_public(server: ServerProcess) -> None:
    bokehjs = http(server.url("/static/js/bokeh.min.js"))
    assert bokehjs.status == 200 and len(bokehjs.body) > 100_000
    assert http(server.url("/demo/static/js/bokeh.min.js")).status == 200  # a script app's static/
    favicon = http(server.url("/favicon.ico"))
    assert favicon.status == 200 and favicon.headers["Content-Type"] == "image/x-icon"


def test_login_and_logout_handlers_are_mounted(server: ServerProcess) -> None:
    login = http(server.url("/login?next=%2Fdemo"))
    assert login.status == 200 and login.text == "login form; next=/demo"
    posted = http(server.url("/login"), method="POST", data={"name": "bob"})  # no XSRF checking here
    assert posted.status == 200 and posted.cookies() == {"user": "bob"}
    logout = http(server.url("/logout"), ALICE)
    assert logout.status == 200 and logout.text == "logged out"
    assert logout.cookies() == {"user": ""}  # cleared


async def test_anonymous_websocket_is_closed_with_1008(server: ServerProcess) -> None:
    code, reason = await closed_anonymously(server.url("/demo"))
    assert (code, reason) == (1008, "authentication required")
    code, reason = await closed_anonymously(server.url("/demo"), {"Cookie": "user="})
    assert (code, reason) == (1008, "authentication required")
    assert "Traceback" not in server.logs()


async def test_websocket_with_the_cookie_acks_and_pulls(server: ServerProcess) -> None:
    url = server.url("/demo")
    token = fetch_token(url, headers=ALICE)
    client = await BokehClient.connect(ws_url(url), token, headers=ALICE)  # waits for the ACK
    try:
        reply = await client.pull()
    finally:
        await client.close()
    assert reply.msgtype == "PULL-DOC-REPLY"
    assert any(m["attributes"].get("text") == "value=1" for m in _walk_models(reply.content["doc"]))


async def test_session_sees_logout_url_and_user_cookie(server: ServerProcess) -> None:
    assert await pull_text(server.url("/whoami"), "whoami", ALICE) == "logout=/logout user=alice"


# -- --prefix ----------------------------------------------------------------------------------------


def test_prefixed_login_redirects(prefixed: ServerProcess) -> None:
    for path in ("/pre/demo", "/pre/demo/metadata", "/pre/"):
        response = http(prefixed.url(path))
        assert response.status == 302 and response.location == login_redirect(path, "/pre/login"), path
    assert http(prefixed.url("/pre/demo"), ALICE).status == 200


def test_prefixed_handlers_are_mounted_under_the_prefix(prefixed: ServerProcess) -> None:
    login = http(prefixed.url("/pre/login?next=%2Fpre%2Fdemo"))
    assert login.status == 200 and login.text == "login form; next=/pre/demo"
    assert http(prefixed.url("/pre/logout")).text == "logged out"
    assert http(prefixed.url("/login")).status == 404
    assert http(prefixed.url("/logout")).status == 404


async def test_prefixed_logout_url_in_the_session(prefixed: ServerProcess) -> None:
    assert await pull_text(prefixed.url("/pre/whoami"), "whoami", ALICE) == "logout=/pre/logout user=alice"


# -- get_user_async ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def async_server(module_server_factory: Any, files: dict[str, Path]) -> ServerProcess:
    return module_server_factory([f"{APPS}/demo.py"], ["--auth-module", str(files["async"])])


async def test_get_user_async_guards_everything(async_server: ServerProcess) -> None:
    for path in ("/demo", "/demo/metadata", "/", "/demo/autoload.js?bokeh-autoload-element=x"):
        response = http(async_server.url(path))
        assert response.status == 302 and response.location == login_redirect(path), path
    assert http(async_server.url("/demo"), ALICE).status == 200
    assert http(async_server.url("/demo/metadata"), ALICE).status == 200
    assert http(async_server.url("/static/js/bokeh.min.js")).status == 200
    assert await closed_anonymously(async_server.url("/demo")) == (1008, "authentication required")
    url = async_server.url("/demo")
    client = await BokehClient.connect(ws_url(url), fetch_token(url, headers=ALICE), headers=ALICE)
    try:
        assert (await client.pull()).msgtype == "PULL-DOC-REPLY"
    finally:
        await client.close()
    assert "Traceback" not in async_server.logs()


# -- get_login_url -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def idp_server(module_server_factory: Any, files: dict[str, Path]) -> ServerProcess:
    return module_server_factory([f"{APPS}/demo.py"], ["--auth-module", str(files["idp"])])


async def test_get_login_url_is_used_verbatim_with_the_full_url_as_next(idp_server: ServerProcess) -> None:
    response = http(idp_server.url("/demo"))
    assert response.status == 302
    assert response.location == "https://idp.example/sso?" + urllib.parse.urlencode(
        {"next": idp_server.url("/demo")}
    )
    metadata = http(idp_server.url("/demo/metadata"))
    assert metadata.status == 302 and metadata.location == "https://idp.example/sso?app=metadata"
    assert http(idp_server.url("/login")).status == 404  # no LoginHandler, nothing mounted
    assert http(idp_server.url("/demo"), ALICE).status == 200
    assert await closed_anonymously(idp_server.url("/demo")) == (1008, "authentication required")


# -- 3. cookie secret and XSRF, with examples/auth/auth.py -------------------------------------------

EXAMPLE_ARGS = ["--auth-module", str(EXAMPLE / "auth.py")]


@pytest.fixture(scope="module")
def example_flags(module_server_factory: Any) -> ServerProcess:
    args = [*EXAMPLE_ARGS, "--cookie-secret", COOKIE_SECRET, "--enable-xsrf-cookies"]
    return module_server_factory([EXAMPLE / "app.py"], args)


@pytest.fixture(scope="module")
def example_env(module_server_factory: Any) -> ServerProcess:
    env = {"BOKEH_COOKIE_SECRET": "another-secret-from-the-environment", "BOKEH_XSRF_COOKIES": "yes"}
    return module_server_factory([EXAMPLE / "app.py"], EXAMPLE_ARGS, env=env)


@pytest.fixture(params=["flags", "env"])
def example(request: pytest.FixtureRequest) -> ServerProcess:
    return request.getfixturevalue(f"example_{request.param}")  # type: ignore[no-any-return]


def login_form(server: ServerProcess, next_path: str = "/app", prefix: str = "") -> tuple[str, str]:
    """GET the login form: (the `_xsrf` cookie, the `_xsrf` form value)."""
    form = http(server.url(prefix + "/login?" + urllib.parse.urlencode({"next": next_path})))
    assert form.status == 200 and 'name="username"' in form.text
    assert f'action="{prefix}/login"' in form.text
    cookie = form.cookies()["_xsrf"]
    match = re.search(r'name="_xsrf" value="([^"]+)"', form.text)
    assert match, form.text
    return cookie, match.group(1)


def log_in(
    server: ServerProcess, password: str = "demo", next_path: str = "/app", prefix: str = ""
) -> Response:
    cookie, value = login_form(server, next_path, prefix)
    fields = {"_xsrf": value, "username": "demo", "password": password, "next": next_path}
    headers = {"Cookie": f'_xsrf="{cookie}"'}
    return http(server.url(prefix + "/login"), headers, method="POST", data=fields)


async def test_login_sets_a_secure_cookie_that_opens_the_app(example: ServerProcess) -> None:
    anonymous = http(example.url("/app"))
    assert anonymous.status == 302 and anonymous.location == login_redirect("/app")

    response = log_in(example)
    assert response.status == 302 and response.location == "/app"
    user = response.cookies()["user"]
    assert user.startswith("2|") and "demo" not in user  # signed, not the plain name
    signed = {"Cookie": f'user="{user}"'}
    assert http(example.url("/app"), signed).status == 200
    hello = await pull_text(example.url("/app"), "hello", signed)
    assert hello == "<h2>Hello, demo</h2>"


def test_forged_or_foreign_user_cookie_is_refused(
    example_flags: ServerProcess, example_env: ServerProcess
) -> None:
    assert http(example_flags.url("/app"), {"Cookie": "user=demo"}).status == 302
    user = log_in(example_env).cookies()["user"]
    # Signed with the other server's secret:
    assert http(example_flags.url("/app"), {"Cookie": f'user="{user}"'}).status == 302
    assert http(example_env.url("/app"), {"Cookie": f'user="{user}"'}).status == 200


def test_wrong_password_sets_no_cookie(example_flags: ServerProcess) -> None:
    response = log_in(example_flags, password="wrong")
    assert response.status == 403 and "wrong password" in response.text
    assert "user" not in response.cookies()


def test_login_only_follows_local_next(example_flags: ServerProcess) -> None:
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        response = log_in(example_flags, next_path=target)
        assert response.status == 302 and response.location == "/", target


@pytest.mark.parametrize("how", ["--enable-xsrf-cookies", "BOKEH_XSRF_COOKIES=yes"])
def test_post_without_xsrf_token_is_403(
    example_flags: ServerProcess, example_env: ServerProcess, how: str
) -> None:
    server = example_flags if how.startswith("--") else example_env
    fields = {"username": "demo", "password": "demo", "next": "/app"}
    missing = http(server.url("/login"), method="POST", data=fields)
    assert missing.status == 403 and "user" not in missing.cookies()
    _, value = login_form(server)
    no_cookie = http(server.url("/login"), method="POST", data={**fields, "_xsrf": value})
    assert no_cookie.status == 403 and "user" not in no_cookie.cookies()


def test_post_without_xsrf_token_is_accepted_when_xsrf_is_off(server: ServerProcess) -> None:
    assert http(server.url("/login"), method="POST", data={"name": "carol"}).status == 200


def test_logout_clears_the_cookie_and_goes_to_the_form(example_flags: ServerProcess) -> None:
    user = log_in(example_flags).cookies()["user"]
    response = http(example_flags.url("/logout"), {"Cookie": f'user="{user}"'})
    assert response.status == 302 and response.location == "/login"
    assert response.cookies()["user"] == ""


def test_secure_cookies_need_a_cookie_secret(server_factory: Any) -> None:
    server = server_factory([EXAMPLE / "app.py"], EXAMPLE_ARGS)
    assert http(server.url("/login")).status == 200  # the form itself uses no secure cookie
    assert http(server.url("/app"), {"Cookie": "user=demo"}).status == 500
    assert server.running


def test_example_under_a_prefix(server_factory: Any) -> None:
    args = [*EXAMPLE_ARGS, "--cookie-secret", COOKIE_SECRET, "--enable-xsrf-cookies", "--prefix", "/pre"]
    server = server_factory([EXAMPLE / "app.py"], args)
    anonymous = http(server.url("/pre/app"))
    assert anonymous.status == 302 and anonymous.location == login_redirect("/pre/app", "/pre/login")
    response = log_in(server, next_path="/pre/app", prefix="/pre")
    assert response.status == 302 and response.location == "/pre/app"
    signed = {"Cookie": f'user="{response.cookies()["user"]}"'}
    assert http(server.url("/pre/app"), signed).status == 200
    logout = http(server.url("/pre/logout"), signed)
    assert logout.status == 302 and logout.location == "/pre/login"
    # Without a local `next`, a login lands on the prefixed root.
    assert log_in(server, next_path="", prefix="/pre").location == "/pre/"

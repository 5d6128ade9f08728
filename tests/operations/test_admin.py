"""`--admin`: who may see `P/admin` (the access matrix), what its JSON holds, and its headers.

Without `--admin-users` only requests from a loopback TCP peer that carry no proxy header may
see it; the machine has only loopback addresses, so the "real socket peer, not X-Real-Ip" half of
the rule is checked by refusing every proxy header (even with --use-xheaders) and by unit tests of
the decision on addresses and of reading the peer from a real socket.
"""

from __future__ import annotations

import http.client
import json
import socket
import textwrap
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from aperture.web.admin_handlers import forwarded, local_request, loopback, socket_peer, user_name
from tests.support.servers import ServerProcess

APPS = "tests/apps"
PROXY_HEADERS = ["X-Forwarded-For", "X-Real-Ip", "Forwarded", "Via", "X-Forwarded-Proto", "x-forwarded-host"]

COOKIE_AUTH = """
    from tornado.web import RequestHandler

    def get_user(request_handler):
        return request_handler.get_cookie("user")

    login_url = "/login"

    class LoginHandler(RequestHandler):
        def get(self):
            self.write("login form")
"""


# -- the decision, unit by unit -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.1", False),
        ("192.0.2.2", False),
        ("::ffff:10.0.0.1", False),
        ("fe80::1%eth0", False),
        ("0.0.0.0", False),
        ("", False),
        (None, False),
        ("localhost", False),  # a name, not an address
        ("127.0.0.1\n", False),
        ("/run/aperture.sock", False),
    ],
)
def test_loopback_addresses(address: str | None, expected: bool) -> None:
    assert loopback(address) is expected


def test_any_proxy_header_makes_a_request_non_local() -> None:
    assert local_request("127.0.0.1", ["Host", "Accept", "Cookie"])
    for header in PROXY_HEADERS + ["X-Forwarded-Anything", "CF-Connecting-IP", "True-Client-IP"]:
        assert forwarded([header])
        assert not local_request("127.0.0.1", ["Host", header])
    assert not local_request("10.0.0.1", ["Host"])  # what the client claims never matters
    assert not local_request(None, ["Host"])


def test_the_peer_is_read_from_the_socket() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        with socket.create_connection(listener.getsockname()) as client:
            accepted, _ = listener.accept()
            with accepted:
                request = SimpleNamespace(connection=SimpleNamespace(stream=SimpleNamespace(socket=accepted)))
                assert socket_peer(request) == client.getsockname()[0] == "127.0.0.1"
    left, right = socket.socketpair(socket.AF_UNIX)
    with left, right:
        request = SimpleNamespace(connection=SimpleNamespace(stream=SimpleNamespace(socket=left)))
        assert socket_peer(request) is None  # Unix sockets are never "local" enough
    assert socket_peer(SimpleNamespace(connection=None)) is None


def test_user_names() -> None:
    assert user_name("alice") == "alice"
    assert user_name(b"alice") == "alice"  # get_secure_cookie returns bytes
    assert user_name(None) is None and user_name("") is None
    assert user_name(b"\xff") == "\ufffd"


# -- a real server ---------------------------------------------------------------------------------


class Reply:
    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


def request(url: str, headers: dict[str, str] | None = None, method: str = "GET") -> Reply:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(
            urllib.request.Request(url, headers=headers or {}, method=method), timeout=20
        ) as reply:
            return Reply(reply.status, reply.headers, reply.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, error.headers, error.read())


@pytest.fixture(scope="module")
def server(module_server_factory: Any) -> ServerProcess:
    return module_server_factory(  # type: ignore[no-any-return]
        [f"{APPS}/demo.py", f"{APPS}/broken.py"], ["--admin", "--use-xheaders"]
    )


def state(server: ServerProcess) -> dict[str, Any]:
    reply = request(server.url("/admin/state"))
    assert reply.status == 200 and reply.headers["Content-Type"] == "application/json"
    return reply.json()  # type: ignore[no-any-return]


def app_state(server: ServerProcess, route: str) -> dict[str, Any]:
    return next(app for app in state(server)["apps"] if app["route"] == route)


def test_page_assets_and_headers_from_loopback(server: ServerProcess) -> None:
    page = request(server.url("/admin"))
    assert page.status == 200
    html = page.body.decode()
    assert '<script src="/admin/admin.js" defer></script>' in html and 'data-state-url="/admin/state"' in html
    assert html.count("<script") == 1 and "style=" not in html and "<style" not in html  # nothing inline
    for path, kind in (
        ("/admin", "text/html"),
        ("/admin/admin.js", "javascript"),
        ("/admin/admin.css", "text/css"),
    ):
        reply = request(server.url(path))
        assert reply.status == 200 and kind in reply.headers["Content-Type"]
        assert reply.headers["Cache-Control"] == "no-store"
        assert reply.headers["X-Frame-Options"] == "DENY"
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
        csp = reply.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert b"textContent" in request(server.url("/admin/admin.js")).body
    assert b"innerHTML" not in request(server.url("/admin/admin.js")).body


def test_state_fields(server: ServerProcess) -> None:
    data = state(server)
    process = data["server"]
    assert process["pid"] == server.pid and process["worker"] is None
    assert process["rss_bytes"] > 10_000_000 and process["cpu_seconds"] > 0 and process["uptime_seconds"] >= 0
    assert process["versions"]["bokeh"].startswith("3.9") and process["draining"] is False
    assert [app["route"] for app in data["apps"]] == ["/broken", "/demo"]
    for app in data["apps"]:
        assert set(app) == {"route", "sessions", "connections", "unused", "busy", "shown", "list"}
    assert set(data) == {"time", "server", "totals", "apps", "errors", "warnings"}


def test_viewing_creates_no_session_and_new_sessions_show(server: ServerProcess) -> None:
    before = app_state(server, "/demo")["sessions"]
    for path in ("/admin", "/admin/state", "/admin/admin.js", "/admin/state?bokeh-session-id=x"):
        request(server.url(path))
    assert app_state(server, "/demo")["sessions"] == before
    assert request(server.url("/demo")).status == 200
    demo = app_state(server, "/demo")
    assert demo["sessions"] == before + 1 and demo["shown"] == len(demo["list"]) == before + 1
    row = demo["list"][0]
    assert len(row["id"]) == 12 and row["connections"] == 0 and row["age_seconds"] >= 0
    assert set(row) == {"id", "age_seconds", "connections", "last_activity_seconds", "in_flight", "busy"}


def test_recent_errors_carry_their_context(server: ServerProcess) -> None:
    assert request(server.url("/broken"), {"X-Request-Id": "admin-sees-this"}).status == 500
    errors = state(server)["errors"]
    mine = [e for e in errors if e["request_id"] == "admin-sees-this"]
    assert mine and mine[0]["app"] == "/broken" and "the data file is missing" in mine[0]["message"]
    assert mine[0]["level"] == "ERROR" and mine[0]["logger"].startswith("aperture")


@pytest.mark.parametrize("header", PROXY_HEADERS)
def test_a_proxy_header_from_loopback_is_refused(server: ServerProcess, header: str) -> None:
    for path in ("/admin", "/admin/state", "/admin/admin.js"):
        reply = request(server.url(path), {header: "127.0.0.1"})  # even one claiming loopback
        assert reply.status == 403, (path, header)
        assert b"--admin-users" in reply.body and b"Traceback" not in reply.body
        assert reply.headers["Cache-Control"] == "no-store"


def test_only_get_and_head(server: ServerProcess) -> None:
    head = request(server.url("/admin/state"), method="HEAD")
    assert head.status == 200 and head.body == b""
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        reply = request(server.url("/admin/state"), method=method)
        assert reply.status == 405 and b"Traceback" not in reply.body
    for path in ("/admin/", "/admin/state/x", "/admin/admin.jsx", "/admin/../admin/state%00"):
        assert request(server.url(path)).status == 404, path


def test_admin_off_is_404(server_factory: Any) -> None:
    plain = server_factory([f"{APPS}/demo.py"])
    for path in ("/admin", "/admin/state", "/admin/admin.js"):
        assert request(plain.url(path)).status == 404


def test_unix_socket_connections_are_refused(server_factory: Any, tmp_path: Path) -> None:
    path = tmp_path / "aperture.sock"
    server_factory([f"{APPS}/demo.py"], ["--admin", "--unix-socket", str(path)], port=None, address=None)

    class UnixConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.settimeout(20)
            self.sock.connect(str(path))

    connection = UnixConnection("localhost")
    try:
        connection.request("GET", "/admin/state")
        reply = connection.getresponse()
        assert reply.status == 403 and b"--admin-users" in reply.read()
    finally:
        connection.close()


def test_auth_module_and_admin_users(server_factory: Any, tmp_path: Path) -> None:
    auth = tmp_path / "cookie_auth.py"
    auth.write_text(textwrap.dedent(COOKIE_AUTH))
    server = server_factory(
        [f"{APPS}/demo.py"], ["--admin", "--auth-module", str(auth), "--admin-users", "alice", "carol"]
    )
    for path in ("/admin", "/admin/state"):
        assert request(server.url(path), {"Cookie": "user=alice"}).status == 200
        assert request(server.url(path), {"Cookie": "user=carol"}).status == 200
        refused = request(server.url(path), {"Cookie": "user=bob"})
        assert refused.status == 403 and b"--admin-users" in refused.body
        anonymous = request(server.url(path))
        assert anonymous.status == 302 and anonymous.headers["Location"].startswith("/login?next=")
    # A listed user may use it through a proxy: the allow-list, not the address, decides.
    assert (
        request(server.url("/admin/state"), {"Cookie": "user=alice", "X-Forwarded-For": "203.0.113.9"}).status
        == 200
    )
    assert request(server.url("/admin/state"), {"Cookie": "user=ALICE"}).status == 403  # names are exact


def test_with_workers_and_a_prefix_a_worker_answers_for_itself(server_factory: Any) -> None:
    server = server_factory([f"{APPS}/demo.py"], ["--admin", "--num-procs", "2", "--prefix", "ops"])
    html = request(server.url("/ops/admin")).body.decode()
    assert 'src="/ops/admin/admin.js"' in html and 'data-state-url="/ops/admin/state"' in html
    assert request(server.url("/ops/admin/admin.css")).status == 200
    assert request(server.url("/admin")).status == 404
    reply = request(server.url("/ops/admin/state"))
    assert reply.status == 200
    seen = reply.json()["server"]
    assert seen["worker"]["count"] == 2 and seen["worker"]["number"] in (0, 1, 2)
    assert seen["pid"] != server.pid  # a worker, not the supervisor


def test_admin_users_need_a_sign_in_an_auth_module_or_openid_connect() -> None:
    from aperture.config import resolve
    from aperture.errors import ConfigError

    oidc = {"oidc_issuer": "http://127.0.0.1:9/", "oidc_client_id": "c"}
    env = {"APERTURE_OIDC_CLIENT_SECRET": "s", "BOKEH_SECRET_KEY": "k" * 44}
    assert resolve({"admin": True, "admin_users": ["alice"], **oidc}, env).admin_users == ("alice",)
    with pytest.raises(ConfigError, match="--admin-users names users who sign in"):
        resolve({"admin": True, "admin_users": ["alice"]}, {})

"""A real OpenID Connect provider for the identity tests, and the clients that talk to it.

``OidcProvider`` runs ``node tests/identity/provider/provider.mjs`` (panva's certified
``oidc-provider`` from the npm registry, installed by ``make`` with ``npm ci``) on a free loopback
port, with a settings file in a temporary directory: one confidential client, the ``ACCOUNTS``
below, lifetimes and RSA signing keys made here (so a test can re-sign tokens with the provider's
own key). It is ready once its discovery document answers, and is stopped by its PID. A test
adds the URLs of the Aperture servers it started (``allow``), shortens lifetimes, changes the
refresh-token policy or rotates the signing key at run time through the provider's loopback
control endpoint; sessions and grants survive those changes.

``TokenProxy`` sits between Aperture and the provider's token endpoint (the provider's discovery
document names the proxy as ``token_endpoint``): it passes every request on unchanged and keeps
the id_tokens it saw, and a test may set ``rewrite`` to alter the id_token on its way back.

``SignInClient`` is a browser without JavaScript: a cookie jar, redirects followed one hop at a
time, and the provider's development login form filled in and posted.

``require_provider()`` skips a test when ``node`` or the provider's ``node_modules`` are missing,
or fails it under ``CI=true``.
"""

from __future__ import annotations

import base64
import html
import http.cookiejar
import http.server
import json
import os
import re
import secrets
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import stop_group_leader
from tests.support.servers import REPO_ROOT, free_port

PROVIDER_DIR = REPO_ROOT / "tests" / "identity" / "provider"
PROVIDER_SCRIPT = PROVIDER_DIR / "provider.mjs"
PROVIDER_PACKAGE = PROVIDER_DIR / "node_modules" / "oidc-provider" / "package.json"

CLIENT_ID = "aperture-tests"
CLIENT_SECRET = "client-secret-for-the-identity-tests-0123456789"
# The deployment key every Aperture instance of a test shares (the cookies' key is derived from it).
DEPLOYMENT_KEY = "identity-tests-deployment-key-" + "k" * 32
PASSWORD = "any password"  # the development login form accepts any password

ACCOUNTS: dict[str, dict[str, Any]] = {
    "alice": {
        "preferred_username": "alice",
        "name": "Alice Liddell",
        "email": "alice@example.test",
        "email_verified": True,
        "groups": ["staff", "admins"],
    },
    "bob": {
        "preferred_username": "bob",
        "name": "Bob Cratchit",
        "email": "bob@example.test",
        "email_verified": True,
        "groups": ["staff"],
    },
}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def require_provider() -> str:
    """The ``node`` program; skip when it or the provider's packages are missing (fail in CI)."""
    node = shutil.which("node")
    if node is None:
        message = "node is not installed; the identity tests run oidc-provider on it (Debian: nodejs npm)"
    elif not PROVIDER_PACKAGE.exists():
        message = f"oidc-provider is not installed: run `npm ci` in {PROVIDER_DIR} (make test does)"
    else:
        return node
    if in_ci():
        pytest.fail(message + " (in CI a missing tool is a failure, not a skip)")
    pytest.skip(message)


def new_signing_key(kid: str | None = None) -> dict[str, Any]:
    """A fresh RS256 private key as a JWK (what the provider signs id_tokens with)."""
    from joserfc.jwk import RSAKey

    parameters = {"kid": kid or "k-" + secrets.token_hex(4), "use": "sig", "alg": "RS256"}
    key = RSAKey.generate_key(2048, parameters=parameters, private=True)  # type: ignore[arg-type]
    return dict(key.as_dict(private=True))


# -- id_tokens ------------------------------------------------------------------------------------


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def token_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A JWT's header and claims, read without any verification (tests look inside tokens)."""
    header, payload, _signature = token.split(".")
    return json.loads(_b64decode(header)), json.loads(_b64decode(payload))


def sign(claims: Mapping[str, Any], key: Mapping[str, Any], **header: Any) -> str:
    """``claims`` signed with ``key`` (a private RSA JWK) as RS256, ``kid`` from the key unless given."""
    from joserfc import jwt
    from joserfc.jwk import RSAKey

    fields = {"alg": "RS256", "kid": key["kid"], "typ": "JWT", **header}
    return jwt.encode(fields, dict(claims), RSAKey.import_key(dict(key)), algorithms=["RS256"])


# -- the provider ---------------------------------------------------------------------------------


class OidcProvider:
    """``oidc-provider`` on a free loopback port; ``start()``, ``stop()``, or use as a context manager."""

    def __init__(
        self,
        directory: Path,
        *,
        id_token_ttl: int = 60,
        access_token_ttl: int = 60,
        refresh_token_ttl: int = 3600,
        refresh_tokens: str = "offline_access",  # or "always" / "never"
        token_endpoint: str | None = None,
        start_timeout: float = 20.0,
    ) -> None:
        self.node = require_provider()
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.keys = [new_signing_key()]
        self.admin_token = secrets.token_urlsafe(16)
        self.redirect_uris: list[str] = []
        self.post_logout_redirect_uris: list[str] = []
        self.settings: dict[str, Any] = {
            "admin_token": self.admin_token,
            "client": {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
            "accounts": ACCOUNTS,
            "ttl": {
                "IdToken": id_token_ttl,
                "AccessToken": access_token_ttl,
                "RefreshToken": refresh_token_ttl,
                "Session": 3600,
            },
            "refresh_tokens": refresh_tokens,
            "token_endpoint": token_endpoint,
            "cookie_keys": [secrets.token_urlsafe(24)],
        }
        self.start_timeout = start_timeout
        self.port = 0
        self.log_path = self.directory / "provider.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.issuer + path

    @property
    def signing_key(self) -> dict[str, Any]:
        """The private JWK the provider signs with now."""
        return self.keys[0]

    def start(self) -> OidcProvider:
        for attempt in range(3):
            self.port = free_port()
            settings = {
                **self.settings,
                "port": self.port,
                "issuer": self.issuer,
                "keys": self.keys,
                "client": {**self.settings["client"], **self._client_urls()},
            }
            path = self.directory / "settings.json"
            path.write_text(json.dumps(settings), encoding="utf-8")
            path.chmod(0o600)
            with open(self.log_path, "wb") as log:
                self._proc = subprocess.Popen(
                    [self.node, str(PROVIDER_SCRIPT), str(path)],
                    cwd=PROVIDER_DIR,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            if self._wait_ready():
                return self
            clash = "EADDRINUSE" in self.logs()
            self.stop()
            if not clash or attempt == 2:
                break
        raise RuntimeError(f"oidc-provider did not start:\n{self.logs()}")

    def _wait_ready(self) -> bool:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(
                    self.url("/.well-known/openid-configuration"), timeout=2
                ) as reply:
                    if reply.status == 200:
                        return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_group_leader(proc, 5.0, running=proc.poll() is None)

    def __enter__(self) -> OidcProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def logs(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def requests(self, pattern: str) -> list[str]:
        """The provider's request log lines (``METHOD /path status``) matching ``pattern``."""
        return [line for line in self.logs().splitlines() if re.search(pattern, line)]

    # -- run-time control ----------------------------------------------------------------------

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change settings (``ttl={...}``, ``refresh_tokens=...``, ``keys=[...]``, ``client={...}``)."""
        request = urllib.request.Request(
            self.url("/_test/configure"),
            data=json.dumps(changes).encode(),
            headers={"content-type": "application/json", "x-admin-token": self.admin_token},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            shown: dict[str, Any] = json.loads(reply.read())
        for name, value in changes.items():
            if name == "ttl":
                self.settings["ttl"].update(value)
            elif name not in ("keys", "client"):
                self.settings[name] = value
        return shown

    def _client_urls(self) -> dict[str, list[str]]:
        return {
            "redirect_uris": self.redirect_uris or ["http://127.0.0.1/oidc/callback"],
            "post_logout_redirect_uris": self.post_logout_redirect_uris or ["http://127.0.0.1/"],
        }

    def allow(self, base_url: str, prefix: str = "") -> None:
        """Register ``<base_url><prefix>/oidc/callback`` and the post-logout URL ``<base_url><prefix>/``."""
        self.redirect_uris.append(f"{base_url}{prefix}/oidc/callback")
        self.post_logout_redirect_uris.append(f"{base_url}{prefix}/")
        self.configure(client=self._client_urls())

    def rotate_key(self, *, keep_old: bool) -> dict[str, Any]:
        """Sign with a new key from now on; the old one stays in the JWKS only if ``keep_old``."""
        key = new_signing_key()
        self.keys = [key, *self.keys] if keep_old else [key]
        self.configure(keys=self.keys)
        return key


# -- a proxy in front of the token endpoint --------------------------------------------------------


class TokenProxy:
    """Passes token requests to ``upstream``; a test may rewrite the id_token in the answer.

    ``rewrite`` takes the provider's id_token and returns the one Aperture receives. ``seen``
    keeps every id_token the provider issued through the proxy, oldest first.
    """

    def __init__(self, upstream: str = "") -> None:
        self.upstream = upstream
        self.rewrite: Callable[[str], str] | None = None
        self.seen: list[str] = []
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/token"

    def start(self) -> TokenProxy:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = min(int(self.headers.get("content-length") or 0), 1_000_000)
                status, body = proxy._forward(self.rfile.read(length), self.headers)
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.send_header("cache-control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1})
        self._thread.daemon = True
        self._thread.start()
        return self

    def _forward(self, body: bytes, headers: Message) -> tuple[int, bytes]:
        passed = {name: value for name, value in headers.items() if name.lower() in _TOKEN_HEADERS}
        request = urllib.request.Request(self.upstream, data=body, headers=passed, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                status, answer = reply.status, reply.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()
        document = json.loads(answer)
        token = document.get("id_token")
        if isinstance(token, str):
            self.seen.append(token)
            if self.rewrite is not None:
                document["id_token"] = self.rewrite(token)
        return status, json.dumps(document).encode()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


_TOKEN_HEADERS = {"authorization", "content-type", "accept", "dpop"}


# -- a browser without JavaScript ------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    url: str
    headers: Message
    body: str

    @property
    def location(self) -> str | None:
        """The redirect target, made absolute against the request URL."""
        target = self.headers.get("location")
        return urllib.parse.urljoin(self.url, target) if target else None

    def set_cookies(self) -> list[str]:
        return self.headers.get_all("set-cookie") or []


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


FORM_RE = re.compile(r"<form\b[^>]*>.*?</form>", re.DOTALL | re.IGNORECASE)
ACTION_RE = re.compile(r'\baction="([^"]*)"', re.IGNORECASE)
HIDDEN_RE = re.compile(r'<input\b[^>]*type="hidden"[^>]*>', re.IGNORECASE)
ATTR_RE = re.compile(r'\b(name|value)="([^"]*)"', re.IGNORECASE)


def forms(page: str) -> list[tuple[str, dict[str, str]]]:
    """Every ``<form>`` of a page: its action and its hidden fields."""
    found = []
    for form in FORM_RE.findall(page):
        action = ACTION_RE.search(form)
        fields = {}
        for hidden in HIDDEN_RE.findall(form):
            attrs = {name.lower(): html.unescape(value) for name, value in ATTR_RE.findall(hidden)}
            if "name" in attrs:
                fields[attrs["name"]] = attrs.get("value", "")
        found.append((html.unescape(action.group(1)) if action else "", fields))
    return found


@dataclass
class SignInClient:
    """Cookies plus one-hop-at-a-time requests; ``sign_in`` walks the whole OpenID Connect dance."""

    jar: http.cookiejar.CookieJar = field(default_factory=http.cookiejar.CookieJar)
    hops: list[Reply] = field(default_factory=list)  # every reply of the last follow()/sign_in()
    logins: int = 0  # how often the provider's login form was filled in

    def __post_init__(self) -> None:
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect)

    def request(
        self, url: str, *, data: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None
    ) -> Reply:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(url, data=body, headers=dict(headers or {}))
        try:
            with self._opener.open(request, timeout=15) as response:
                return Reply(
                    response.status, url, response.headers, response.read().decode("utf-8", "replace")
                )
        except urllib.error.HTTPError as error:
            with error:
                text = error.read().decode("utf-8", "replace")
            return Reply(error.code, url, error.headers, text)

    def get(self, url: str, **kw: Any) -> Reply:
        return self.request(url, **kw)

    def follow(
        self,
        url: str,
        *,
        user: str | None = None,
        stop: Callable[[str], bool] | None = None,
        max_hops: int = 20,
    ) -> Reply:
        """GET ``url`` and follow redirects; fill in the provider's login form as ``user`` if it shows.

        Stops at the first answer that is neither a redirect nor a provider form it can fill in
        (a login form when ``user`` is None stops it too), or at a redirect whose target
        satisfies ``stop`` (not requested). Every reply on the way is in ``hops``.
        """
        self.hops = []
        reply = self.get(url)
        for _ in range(max_hops):
            self.hops.append(reply)
            if reply.status in (301, 302, 303, 307, 308) and reply.location:
                if stop is not None and stop(reply.location):
                    return reply
                reply = self.get(reply.location)
                continue
            form = self.provider_form(reply)
            if form is None:
                return reply
            action, fields = form
            if fields.get("prompt") == "login":
                if user is None:
                    return reply
                self.logins += 1
                fields = {**fields, "login": user, "password": PASSWORD}
            reply = self.request(action, data=fields)
        raise AssertionError("too many redirects:\n" + "\n".join(f"{r.status} {r.url}" for r in self.hops))

    def callback_url(self, url: str, user: str = "alice") -> str:
        """Sign in from ``url`` up to the provider's redirect back to Aperture; that callback URL."""
        reply = self.follow(url, user=user, stop=lambda target: "/oidc/callback" in target)
        assert reply.location is not None and "/oidc/callback" in reply.location, (reply.status, reply.url)
        return reply.location

    def sign_in(self, url: str, user: str = "alice") -> Reply:
        """Open ``url`` as ``user``: through Aperture's redirect, the provider's login, the callback."""
        return self.follow(url, user=user)

    @staticmethod
    def provider_form(reply: Reply) -> tuple[str, dict[str, str]] | None:
        """The provider's login or consent form in a 200 page, if that is what the page is."""
        if reply.status != 200:
            return None
        for action, fields in forms(reply.body):
            if fields.get("prompt") in ("login", "consent"):
                return action, fields
        return None

    def confirm_logout(self, reply: Reply) -> Reply:
        """Answer the provider's "Do you want to sign-out?" page with yes, then follow on."""
        for action, fields in forms(reply.body):
            if "xsrf" in fields:
                answer = self.request(action, data={**fields, "logout": "yes"})
                return self.follow_on(answer)
        raise AssertionError(f"no logout form in the page from {reply.url}:\n{reply.body[:2000]}")

    def follow_on(self, reply: Reply, max_hops: int = 20) -> Reply:
        """Follow the redirects from ``reply`` on (adding to ``hops``) to the first other answer."""
        for _ in range(max_hops):
            self.hops.append(reply)
            if reply.status in (301, 302, 303, 307, 308) and reply.location:
                reply = self.get(reply.location)
                continue
            return reply
        raise AssertionError("too many redirects")

    # -- cookies -----------------------------------------------------------------------------

    def cookie_header(self, url: str) -> str:
        """The Cookie header this client sends to ``url`` (ws:// and wss:// as http:// and https://)."""
        http_url = re.sub(r"^ws", "http", url)
        request = urllib.request.Request(http_url)
        self.jar.add_cookie_header(request)
        return request.get_header("Cookie") or ""

    def drop_cookies(self, names: Callable[[str], bool]) -> None:
        for cookie in list(self.jar):
            if names(cookie.name):
                self.jar.clear(cookie.domain, cookie.path, cookie.name)

    def put_cookie(
        self, like: http.cookiejar.Cookie, *, name: str | None = None, value: str | None = None
    ) -> None:
        """Store a copy of ``like`` with another name and/or value (a replayed or tampered cookie)."""
        copy = copy_cookie(like)
        copy.name = name if name is not None else like.name
        copy.value = value if value is not None else like.value
        self.jar.set_cookie(copy)


def copy_cookie(cookie: http.cookiejar.Cookie) -> http.cookiejar.Cookie:
    return http.cookiejar.Cookie(
        cookie.version, cookie.name, cookie.value, cookie.port, cookie.port_specified, cookie.domain,
        cookie.domain_specified, cookie.domain_initial_dot, cookie.path, cookie.path_specified,
        cookie.secure, cookie.expires, cookie.discard, cookie.comment, cookie.comment_url,
        dict(cookie._rest), cookie.rfc2109,
    )  # fmt: skip


def provider_and_proxy(directory: Path, **settings: Any) -> tuple[OidcProvider, TokenProxy]:
    """A provider whose discovery names a ``TokenProxy`` as its token endpoint; both started."""
    proxy = TokenProxy().start()
    provider = OidcProvider(directory, token_endpoint=proxy.url, **settings)
    try:
        provider.start()
    except BaseException:
        proxy.stop()
        raise
    proxy.upstream = provider.url("/token")
    return provider, proxy


def aperture_args(provider: OidcProvider, *extra: str) -> list[str]:
    """The flags that sign users in with ``provider`` (the secret travels in ``aperture_env``)."""
    return ["--oidc-issuer", provider.issuer, "--oidc-client-id", CLIENT_ID, *extra]


def aperture_env(**more: str | None) -> dict[str, str | None]:
    return {"APERTURE_OIDC_CLIENT_SECRET": CLIENT_SECRET, "BOKEH_SECRET_KEY": DEPLOYMENT_KEY, **more}


def keep_on_loopback(page: Any) -> list[str]:
    """Abort every request a Playwright page makes to a host off loopback; the list of those URLs."""
    blocked: list[str] = []

    def route(request_route: Any) -> None:
        host = urllib.parse.urlsplit(request_route.request.url).hostname or ""
        if host in ("127.0.0.1", "localhost", "::1") or request_route.request.url.startswith("data:"):
            request_route.continue_()
        else:
            blocked.append(request_route.request.url)
            request_route.abort()

    page.route("**/*", route)
    return blocked

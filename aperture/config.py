"""One frozen `Config`: every setting of a server, resolved once at start-up.

This module is the only reader of the command line and of the settings' environment
variables (`BOKEH_*`, and `APERTURE_*` for Aperture's own): `resolve()` turns parsed flags
(see `aperture.options.SETTINGS`, from which the CLI builds its parser) plus an environment
mapping into a validated `Config`. Errors are `ConfigError`s whose text
names the flag and the variable, so the CLI can print one line and exit.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aperture.errors import ConfigError
from aperture.options import SETTINGS
from aperture.security.origins import parse_allowlist
from aperture.security.owner_hints import parse_instance

DEFAULT_PORT = 5006
DEFAULT_LOG_FORMAT = "%(asctime)s %(message)s"
DEFAULT_MAX_MESSAGE_SIZE = 20 * 1024 * 1024
DEFAULT_HEADER_TIMEOUT = 60  # seconds; nginx's client_header_timeout, where Tornado waits an hour


@dataclass(frozen=True)
class OidcSettings:
    """`--oidc-*`: who the provider is, how this server is registered with it, who may sign in."""

    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    user_claim: str | None = None  # None: preferred_username, else email, else sub
    allowed_users: tuple[str, ...] = ()
    allowed_groups: tuple[str, ...] = ()
    groups_claim: str = "groups"
    pass_claims: tuple[str, ...] = ()
    redirect_url: str | None = None


@dataclass(frozen=True)
class Config:
    """Everything a server needs to know, validated. Times are in milliseconds unless named."""

    apps: tuple[str, ...] = ()
    argv: tuple[str, ...] = ()
    port: int = DEFAULT_PORT
    address: str | None = None
    prefix: str = ""
    log_level: str = "info"
    log_format: str = DEFAULT_LOG_FORMAT
    log_file: str | None = None
    dev: tuple[str, ...] | None = None
    show: bool = False
    browser: str | None = None
    allow_websocket_origin: tuple[str, ...] = ()
    env_websocket_origin: tuple[str, ...] = ()
    ico_path: str | None = "default"
    keep_alive: int = 37000
    check_unused_sessions: int = 17000
    unused_session_lifetime: int = 15000
    stats_log_frequency: int = 15000
    mem_log_frequency: int = 0
    use_xheaders: bool = False
    sign_sessions: bool = False
    generate_session_ids: bool = True
    secret_key: bytes | None = None
    include_headers: tuple[str, ...] | None = None
    exclude_headers: tuple[str, ...] | None = None
    include_cookies: tuple[str, ...] | None = None
    exclude_cookies: tuple[str, ...] | None = None
    cookie_secret: str | None = None
    auth_module: str | None = None
    xsrf_cookies: bool = False
    index: str | None = None
    use_index: bool = True
    redirect_root: bool = True
    num_procs: int = 1
    shutdown_timeout: int = 10
    shutdown_delay: int = 3
    header_timeout: int = DEFAULT_HEADER_TIMEOUT  # seconds
    unix_socket: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_password: str | None = None
    session_token_expiration: int = 300
    session_reconnect_window: int = 86400
    websocket_max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    websocket_compression_level: int | None = None
    websocket_compression_mem_level: int | None = None
    glob: bool = False
    callback_threads: int = 8
    advertise_address: str | None = None
    session_store: str | None = field(default=None, repr=False)  # may hold a password
    session_store_flush: int = 200  # milliseconds
    accelerate: bool = True  # use aperture.accelerate where the Bokeh version was verified
    worker_restart_limit: int = 10
    worker_restart_window: int = 60
    js_log_level: str = "info"
    resources_mode: str = "server"
    minified: bool = True
    bokeh_dev: bool = False
    metrics: bool = False  # serve PREFIX/metrics
    max_sessions: int = 0  # per process; 0 = no limit
    max_sessions_per_app: int = 0  # per app and process; 0 = no limit
    slow_callback_ms: int = 0  # 0 = no slow-callback warnings
    admin: bool = False  # serve PREFIX/admin
    admin_users: tuple[str, ...] = ()
    access_log: bool = True
    setup: str | None = None  # script run once per process before serving
    warm: bool = False  # build each app's document once at start-up
    oidc: OidcSettings | None = None  # built-in OpenID Connect sign-in (--oidc-issuer)

    @property
    def log_json(self) -> bool:
        """`--log-format json`: one JSON object per log line."""
        return self.log_format.strip().lower() == "json"

    def origin_allowlist(self, actual_port: int) -> tuple[str, ...]:
        """The websocket origins allowed once the real port is known."""
        if self.env_websocket_origin:
            return self.env_websocket_origin
        if self.allow_websocket_origin:
            return self.allow_websocket_origin
        if self.unix_socket:
            return ()  # behind a proxy: only same-origin pages (Origin == Host) may connect
        return (f"localhost:{actual_port}",)


def parse_bool(text: str, what: str) -> bool:
    """Read a yes/no setting the way a person means it (unlike the reference's truthiness)."""
    value = text.strip().lower()
    if value in ("1", "yes", "true", "on"):
        return True
    if value in ("", "0", "no", "false", "off"):
        return False
    raise ConfigError(f"{what} must be yes/no, true/false, on/off or 1/0, got {text!r}")


def normalize_prefix(prefix: str | None) -> str:
    """'pfx', '/pfx', 'pfx/' and '/pfx/' all mean '/pfx'; nothing means ''."""
    stripped = (prefix or "").strip("/")
    return "/" + stripped if stripped else ""


def _env(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name)
    return value if value not in (None, "") else None


def _positive(value: int, flag: str, allow_zero: bool = False) -> int:
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{flag} must be {bound}, got {value}")
    return value


def _int_env(environ: Mapping[str, str], name: str, default: int, flag: str) -> int:
    raw = _env(environ, name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} (default of {flag}) must be an integer, got {raw!r}") from None


def _host_port(value: str | None, flag: str) -> str | None:
    if value is None:
        return None
    try:
        return parse_instance(value)
    except ValueError:
        raise ConfigError(
            f"{flag} must look like HOST:PORT (an IP address, [IPv6] or a DNS name), got {value!r}"
        ) from None


def _in_range(value: int | None, low: int, high: int, flag: str) -> int | None:
    if value is not None and not low <= value <= high:
        raise ConfigError(f"{flag} must be between {low} and {high}, got {value}")
    return value


def _refuse_pending(flags: Mapping[str, Any], environ: Mapping[str, str]) -> None:
    for setting in SETTINGS:
        if setting.pending is None:
            continue
        value = flags.get(setting.name)
        from_env = setting.env is not None and _env(environ, setting.env) is not None
        if value not in (None, False, [], ()) or from_env:
            where = setting.flags[0] + (f" / {setting.env}" if setting.env else "")
            raise ConfigError(f"{where}: this option {setting.pending}; remove it to start the server")


def _session_modes(flags: Mapping[str, Any], environ: Mapping[str, str]) -> tuple[bool, bool, bytes | None]:
    mode = flags.get("session_ids")
    if mode is None:
        raw = _env(environ, "BOKEH_SIGN_SESSIONS")
        signed = parse_bool(raw, "BOKEH_SIGN_SESSIONS (or use --session-ids)") if raw is not None else False
        mode = "signed" if signed else "unsigned"
    key_text = _env(environ, "BOKEH_SECRET_KEY")
    secret = key_text.encode("utf-8") if key_text is not None else None
    signed = mode in ("signed", "external-signed")
    if signed and secret is None:
        raise ConfigError(
            "--session-ids / BOKEH_SIGN_SESSIONS: signing sessions needs BOKEH_SECRET_KEY; "
            "create one with `aperture secret`"
        )
    return signed, mode != "external-signed", secret


def _name_lists(flags: Mapping[str, Any], kind: str) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    include, exclude = flags.get(f"include_{kind}"), flags.get(f"exclude_{kind}")
    if include is not None and exclude is not None:
        raise ConfigError(
            f"--include-{kind} / --exclude-{kind}: declare either an include or an exclude list, not both"
        )
    return (tuple(include) if include is not None else None, tuple(exclude) if exclude is not None else None)


def _ico(flags: Mapping[str, Any], environ: Mapping[str, str], dev: bool) -> str | None:
    value = flags.get("ico_path") or _env(environ, "BOKEH_ICO_PATH") or ("default-dev" if dev else "default")
    if value.lower() == "none":
        return None
    if value in ("default", "default-dev") or value.endswith(".ico"):
        return str(value)
    raise ConfigError(
        f"--ico-path / BOKEH_ICO_PATH: expected a .ico file, 'default' or 'none', got {value!r}"
    )


def _log_level(flags: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    level = flags.get("log_level") or _env(environ, "BOKEH_PY_LOG_LEVEL")
    if level is None or level.lower() == "none":
        return "info"
    if level.lower() not in ("trace", "debug", "info", "warning", "error", "critical"):
        raise ConfigError(f"--log-level / BOKEH_PY_LOG_LEVEL: unknown level {level!r}")
    return str(level.lower())


def _check_unix_socket_options(flags: Mapping[str, Any], certfile: str | None, keyfile: str | None) -> None:
    """A Unix socket leaves port, address and TLS to the proxy in front.

    Origins are still ours to check: `--allow-websocket-origin` applies over the socket as over TCP
    (as in the reference, whose command lines and systemd units pass both).
    """
    clashes = [
        flag
        for flag, present in (
            ("--port", flags.get("port") is not None),
            ("--address", bool(flags.get("address"))),
            ("--ssl-certfile / BOKEH_SSL_CERTFILE", bool(certfile)),
            ("--ssl-keyfile / BOKEH_SSL_KEYFILE", bool(keyfile)),
        )
        if present
    ]
    if clashes:
        raise ConfigError(
            f"--unix-socket cannot be combined with {', '.join(clashes)}: the proxy in front of the socket "
            "handles ports and TLS"
        )


def _store_url(url: str | None) -> str | None:
    """A session store URL Redis's client will accept: redis://, rediss:// (TLS) or unix://."""
    if not url:
        return None
    what = "--session-store / APERTURE_SESSION_STORE"
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(f"{what} must be a redis://, rediss:// or unix:// URL")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise ConfigError(f"{what}: the port is not a number between 0 and 65535") from None
    if parts.scheme != "unix" and not parts.hostname:
        raise ConfigError(f"{what}: the URL names no host")
    if parts.scheme != "unix" and parts.path not in ("", "/") and not parts.path[1:].isdigit():
        raise ConfigError(f"{what}: the path must be a database number, like /0")
    return url


def _admin_users(
    flags: Mapping[str, Any], auth_module: str | None, environ: Mapping[str, str]
) -> tuple[str, ...]:
    users = tuple(flags.get("admin_users") or ())
    if users and not flags.get("admin"):
        raise ConfigError("--admin-users: the admin page is off; add --admin to serve it")
    signs_in = auth_module or flags.get("oidc_issuer") or _env(environ, "APERTURE_OIDC_ISSUER")
    if users and not signs_in:
        raise ConfigError(
            "--admin-users names users who sign in; add --auth-module (or BOKEH_AUTH_MODULE) or --oidc-issuer, "
            "or drop --admin-users to allow the admin page from this machine only"
        )
    return users


_OIDC_DETAIL_FLAGS = (
    "oidc_client_id",
    "oidc_client_secret_file",
    "oidc_scopes",
    "oidc_user_claim",
    "oidc_allowed_users",
    "oidc_allowed_groups",
    "oidc_groups_claim",
    "oidc_pass_claims",
    "oidc_redirect_url",
)
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _oidc_secret(flags: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    from_env = _env(environ, "APERTURE_OIDC_CLIENT_SECRET")
    path = flags.get("oidc_client_secret_file")
    if path and from_env:
        raise ConfigError(
            "--oidc-client-secret-file and APERTURE_OIDC_CLIENT_SECRET both give the client secret; keep one"
        )
    if path:
        try:
            with open(path, encoding="utf-8") as secret_file:
                secret = secret_file.read().strip()
        except OSError as exc:
            raise ConfigError(f"--oidc-client-secret-file: cannot read {path}: {exc.strerror}") from None
        if not secret:
            raise ConfigError(f"--oidc-client-secret-file: {path} is empty")
        return secret
    if not from_env:
        raise ConfigError(
            "--oidc-issuer needs the client secret: set APERTURE_OIDC_CLIENT_SECRET or name a file with "
            "--oidc-client-secret-file"
        )
    return from_env


def _http_url(value: str, what: str, *, https_unless_loopback: bool) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{what} must be an absolute http(s) URL, got {value!r}")
    if https_unless_loopback and parts.scheme == "http" and parts.hostname not in _LOOPBACK_HOSTS:
        raise ConfigError(f"{what} must use https (http is accepted only on loopback), got {value!r}")
    return value


def _oidc(
    flags: Mapping[str, Any], environ: Mapping[str, str], auth_module: str | None, keyed: bool
) -> OidcSettings | None:
    issuer = flags.get("oidc_issuer") or _env(environ, "APERTURE_OIDC_ISSUER")
    if not issuer:
        given = [name for name in _OIDC_DETAIL_FLAGS if flags.get(name)]
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise ConfigError(f"{flag} configures OpenID Connect sign-in: add --oidc-issuer")
        return None
    if auth_module:
        raise ConfigError(
            "--oidc-issuer and --auth-module (BOKEH_AUTH_MODULE) exclude each other: sign users in with the "
            "built-in OpenID Connect support or with an auth module, not both"
        )
    client_id = flags.get("oidc_client_id") or _env(environ, "APERTURE_OIDC_CLIENT_ID")
    if not client_id:
        raise ConfigError("--oidc-issuer needs --oidc-client-id (or APERTURE_OIDC_CLIENT_ID)")
    if not keyed:
        raise ConfigError(
            "--oidc-issuer keeps sign-ins in encrypted cookies: set BOKEH_SECRET_KEY (or --cookie-secret), the "
            "same on every instance; create one with `aperture secret`"
        )
    scopes = tuple(flags.get("oidc_scopes") or ("openid", "profile", "email"))
    if "openid" not in scopes:
        scopes = ("openid", *scopes)
    redirect = flags.get("oidc_redirect_url") or _env(environ, "APERTURE_OIDC_REDIRECT_URL")
    return OidcSettings(
        issuer=_http_url(issuer.rstrip("/"), "--oidc-issuer", https_unless_loopback=True),
        client_id=client_id,
        client_secret=_oidc_secret(flags, environ),
        scopes=scopes,
        user_claim=flags.get("oidc_user_claim") or None,
        allowed_users=tuple(flags.get("oidc_allowed_users") or ()),
        allowed_groups=tuple(flags.get("oidc_allowed_groups") or ()),
        groups_claim=flags.get("oidc_groups_claim") or "groups",
        pass_claims=tuple(flags.get("oidc_pass_claims") or ()),
        redirect_url=_http_url(redirect, "--oidc-redirect-url", https_unless_loopback=False)
        if redirect
        else None,
    )


def _setup_script(path: str | None) -> str | None:
    if path is None:
        return None
    if not os.path.isfile(path):
        raise ConfigError(f"--setup: {path} is not a file")
    return os.path.abspath(path)


def resolve(flags: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Config:
    """Build the Config from parsed flags (None = not given) and the environment."""
    env = os.environ if environ is None else environ
    _refuse_pending(flags, env)

    def given(name: str, default: Any) -> Any:
        value = flags.get(name)
        return default if value is None else value

    default_port = _int_env(env, "BOKEH_DEFAULT_SERVER_PORT", DEFAULT_PORT, "--port")
    port = given("port", default_port)
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, got {port}")
    signed, generate, secret = _session_modes(flags, env)
    include_headers, exclude_headers = _name_lists(flags, "headers")
    include_cookies, exclude_cookies = _name_lists(flags, "cookies")
    bokeh_dev = parse_bool(_env(env, "BOKEH_DEV") or "no", "BOKEH_DEV")
    try:
        origins = parse_allowlist(flags.get("allow_websocket_origin") or ())
    except ValueError as exc:
        raise ConfigError(f"--allow-websocket-origin / BOKEH_ALLOW_WS_ORIGIN: {exc}") from None
    env_origins = tuple(o.strip() for o in (_env(env, "BOKEH_ALLOW_WS_ORIGIN") or "").split(",") if o.strip())
    try:
        parse_allowlist(env_origins)
    except ValueError as exc:
        raise ConfigError(f"BOKEH_ALLOW_WS_ORIGIN / --allow-websocket-origin: {exc}") from None
    dev = flags.get("dev")
    apps = tuple(flags.get("apps") or ())
    if dev is not None and len(apps) != 1:
        raise ConfigError("--dev: exactly one app must be given to serve in development mode")
    num_procs = given("num_procs", 1)
    if num_procs < 0:
        raise ConfigError(f"--num-procs must be >= 0, got {num_procs}")
    if num_procs == 0:
        num_procs = os.cpu_count() or 1
    if dev is not None:
        num_procs = 1
    unix_socket = flags.get("unix_socket")
    certfile = flags.get("ssl_certfile") or _env(env, "BOKEH_SSL_CERTFILE")
    keyfile = flags.get("ssl_keyfile") or _env(env, "BOKEH_SSL_KEYFILE")
    if unix_socket:
        _check_unix_socket_options(flags, certfile, keyfile)
    max_size = given("websocket_max_message_size", DEFAULT_MAX_MESSAGE_SIZE)
    minified_raw = _env(env, "BOKEH_MINIFIED")
    auth_module = flags.get("auth_module") or _env(env, "BOKEH_AUTH_MODULE")
    access_log = flags.get("access_log") or _env(env, "APERTURE_ACCESS_LOG") or "yes"
    return Config(
        apps=apps,
        argv=tuple(flags.get("args") or ()),
        port=port,
        address=flags.get("address") or None,
        prefix=normalize_prefix(flags.get("prefix")),
        log_level=_log_level(flags, env),
        log_format=given("log_format", DEFAULT_LOG_FORMAT),
        log_file=flags.get("log_file"),
        dev=tuple(dev) if dev is not None else None,
        show=bool(flags.get("show")),
        browser=_env(env, "BOKEH_BROWSER"),
        allow_websocket_origin=origins,
        env_websocket_origin=env_origins,
        ico_path=_ico(flags, env, dev is not None),
        keep_alive=_positive(given("keep_alive", 37000), "--keep-alive", allow_zero=True),
        check_unused_sessions=_positive(given("check_unused_sessions", 17000), "--check-unused-sessions"),
        unused_session_lifetime=_positive(
            given("unused_session_lifetime", 15000), "--unused-session-lifetime"
        ),
        stats_log_frequency=_positive(given("stats_log_frequency", 15000), "--stats-log-frequency"),
        mem_log_frequency=_positive(given("mem_log_frequency", 0), "--mem-log-frequency", allow_zero=True),
        use_xheaders=bool(flags.get("use_xheaders")),
        sign_sessions=signed,
        generate_session_ids=generate,
        secret_key=secret,
        include_headers=include_headers,
        exclude_headers=exclude_headers,
        include_cookies=include_cookies,
        exclude_cookies=exclude_cookies,
        cookie_secret=flags.get("cookie_secret") or _env(env, "BOKEH_COOKIE_SECRET"),
        auth_module=auth_module,
        xsrf_cookies=bool(flags.get("enable_xsrf_cookies"))
        or parse_bool(_env(env, "BOKEH_XSRF_COOKIES") or "no", "BOKEH_XSRF_COOKIES"),
        index=flags.get("index"),
        use_index=not flags.get("disable_index"),
        redirect_root=not flags.get("disable_index_redirect"),
        num_procs=num_procs,
        shutdown_timeout=_positive(given("shutdown_timeout", 10), "--shutdown-timeout"),
        shutdown_delay=_positive(
            given("shutdown_delay", _int_env(env, "APERTURE_SHUTDOWN_DELAY", 3, "--shutdown-delay")),
            "--shutdown-delay / APERTURE_SHUTDOWN_DELAY",
            allow_zero=True,
        ),
        header_timeout=_positive(
            given(
                "header_timeout",
                _int_env(env, "APERTURE_HEADER_TIMEOUT", DEFAULT_HEADER_TIMEOUT, "--header-timeout"),
            ),
            "--header-timeout / APERTURE_HEADER_TIMEOUT",
        ),
        unix_socket=unix_socket,
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
        ssl_password=_env(env, "BOKEH_SSL_PASSWORD"),
        session_reconnect_window=_positive(
            given("session_reconnect_window", 86400), "--session-reconnect-window", allow_zero=True
        ),
        session_token_expiration=_positive(
            given("session_token_expiration", 300), "--session-token-expiration"
        ),
        websocket_max_message_size=_positive(max_size, "--websocket-max-message-size"),
        websocket_compression_level=_in_range(
            flags.get("websocket_compression_level"), 0, 9, "--websocket-compression-level"
        ),
        websocket_compression_mem_level=_in_range(
            flags.get("websocket_compression_mem_level"), 1, 9, "--websocket-compression-mem-level"
        ),
        glob=bool(flags.get("glob")),
        advertise_address=_host_port(flags.get("advertise_address"), "--advertise-address"),
        session_store=_store_url(flags.get("session_store") or _env(env, "APERTURE_SESSION_STORE")),
        session_store_flush=_positive(given("session_store_flush", 200), "--session-store-flush"),
        accelerate=not flags.get("no_accelerate")
        and parse_bool(_env(env, "APERTURE_ACCELERATE") or "yes", "APERTURE_ACCELERATE"),
        worker_restart_limit=_positive(
            given("worker_restart_limit", 10), "--worker-restart-limit", allow_zero=True
        ),
        worker_restart_window=_positive(given("worker_restart_window", 60), "--worker-restart-window"),
        callback_threads=_positive(given("callback_threads", 8), "--callback-threads", allow_zero=True),
        js_log_level=_env(env, "BOKEH_LOG_LEVEL") or ("debug" if bokeh_dev else "info"),
        minified=parse_bool(minified_raw, "BOKEH_MINIFIED") if minified_raw else not bokeh_dev,
        bokeh_dev=bokeh_dev,
        resources_mode=_env(env, "BOKEH_RESOURCES") or ("server-dev" if bokeh_dev else "server"),
        metrics=bool(flags.get("metrics")),
        max_sessions=_positive(
            given("max_sessions", _int_env(env, "APERTURE_MAX_SESSIONS", 0, "--max-sessions")),
            "--max-sessions / APERTURE_MAX_SESSIONS",
            allow_zero=True,
        ),
        max_sessions_per_app=_positive(
            given(
                "max_sessions_per_app",
                _int_env(env, "APERTURE_MAX_SESSIONS_PER_APP", 0, "--max-sessions-per-app"),
            ),
            "--max-sessions-per-app / APERTURE_MAX_SESSIONS_PER_APP",
            allow_zero=True,
        ),
        slow_callback_ms=_positive(
            given("slow_callback_ms", _int_env(env, "APERTURE_SLOW_CALLBACK_MS", 0, "--slow-callback-ms")),
            "--slow-callback-ms / APERTURE_SLOW_CALLBACK_MS",
            allow_zero=True,
        ),
        admin=bool(flags.get("admin")),
        admin_users=_admin_users(flags, auth_module, env),
        access_log=parse_bool(access_log, "--access-log / APERTURE_ACCESS_LOG"),
        setup=_setup_script(flags.get("setup")),
        warm=bool(flags.get("warm")),
        oidc=_oidc(
            flags,
            env,
            auth_module,
            keyed=bool(secret or flags.get("cookie_secret") or _env(env, "BOKEH_COOKIE_SECRET")),
        ),
    )

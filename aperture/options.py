"""Every `aperture serve` option: its flag, kind, help and environment variable.

`SETTINGS` is the table the CLI builds its parser from and docs/cli.md is generated
from. An option whose feature is not available carries `pending` (the reason);
`aperture.config.resolve` refuses to start when such an option is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LOG_LEVELS = ("trace", "debug", "info", "warning", "error", "critical", "None")
SESSION_ID_MODES = ("unsigned", "signed", "external-signed")


@dataclass(frozen=True)
class Setting:
    """One `aperture serve` flag: how it parses and where its default comes from."""

    name: str
    flags: tuple[str, ...]
    help: str
    env: str | None = None
    kind: str = "str"  # str | int | bool | list | choice | remainder | optional-list
    choices: tuple[str, ...] = ()
    metavar: str | None = None
    pending: str | None = None  # why the flag is refused at start-up, when not built yet


def _s(name: str, help: str, **kw: Any) -> Setting:
    flag = "--" + name.replace("_", "-")
    return Setting(name=name, flags=(flag,), help=help, **kw)


SETTINGS: tuple[Setting, ...] = (
    _s(
        "port",
        "Port to listen on; 0 picks a free port and prints it (default: 5006).",
        kind="int",
        metavar="PORT",
    ),
    _s("address", "Address to listen on (default: all interfaces).", metavar="ADDRESS"),
    _s(
        "unix_socket",
        "Listen on this Unix domain socket (mode 0600) instead of a TCP port.",
        metavar="UNIX-SOCKET",
    ),
    _s(
        "log_level",
        "Log level of the server (default: info).",
        env="BOKEH_PY_LOG_LEVEL",
        kind="choice",
        choices=LOG_LEVELS,
    ),
    _s(
        "log_format",
        "Log record format, Python logging style (default: '%%(asctime)s %%(message)s'); 'json' writes one JSON "
        "object per line instead (time, level, logger, message, and app, session, request id, client, status "
        "and duration where known).",
        metavar="LOG-FORMAT",
    ),
    _s("log_file", "Append log records to this file instead of stderr.", metavar="LOG-FILE"),
    _s("use_config", "Bokeh YAML settings file to load.", metavar="CONFIG", pending="is not supported yet"),
    _s("args", "Everything after --args is passed to the apps as sys.argv[1:].", kind="remainder"),
    _s("dev", "Reload the server when the app or these files change.", kind="optional-list"),
    _s("show", "Open the served apps in a browser (BOKEH_BROWSER names which).", kind="bool"),
    _s(
        "allow_websocket_origin",
        "Host (HOST[:PORT], '*' wildcards allowed) whose pages may open websockets; repeatable.",
        env="BOKEH_ALLOW_WS_ORIGIN",
        kind="append",
        metavar="HOST[:PORT]",
    ),
    _s("prefix", "URL prefix under which every app is served.", metavar="PREFIX"),
    _s("ico_path", "Path to a .ico favicon, or 'none'.", env="BOKEH_ICO_PATH", metavar="ICO_PATH"),
    _s(
        "keep_alive",
        "Milliseconds between websocket pings; 0 disables (default: 37000).",
        kind="int",
        metavar="MILLISECONDS",
    ),
    _s(
        "check_unused_sessions",
        "Milliseconds between checks for unused sessions (default: 17000).",
        kind="int",
        metavar="MILLISECONDS",
    ),
    _s(
        "unused_session_lifetime",
        "Milliseconds a session without connections is kept (default: 15000).",
        kind="int",
        metavar="MILLISECONDS",
    ),
    _s(
        "stats_log_frequency",
        "Milliseconds between statistics log lines, logged at debug level (default: 15000).",
        kind="int",
        metavar="MILLISECONDS",
    ),
    _s(
        "mem_log_frequency",
        "Milliseconds between memory log lines; 0 disables (default: 0).",
        kind="int",
        metavar="MILLISECONDS",
    ),
    _s("use_xheaders", "Trust X-Real-Ip/X-Forwarded-For and X-Scheme/X-Forwarded-Proto.", kind="bool"),
    _s(
        "ssl_certfile",
        "TLS certificate file.",
        env="BOKEH_SSL_CERTFILE",
        metavar="CERTFILE",
    ),
    _s(
        "ssl_keyfile",
        "TLS private key file.",
        env="BOKEH_SSL_KEYFILE",
        metavar="KEYFILE",
    ),
    _s(
        "session_ids",
        "How session ids are made and checked: unsigned, signed (needs BOKEH_SECRET_KEY) or external-signed (default: unsigned, or signed when BOKEH_SIGN_SESSIONS is yes).",
        env="BOKEH_SIGN_SESSIONS",
        kind="choice",
        choices=SESSION_ID_MODES,
        metavar="MODE",
    ),
    _s(
        "auth_module",
        "Python file with authentication hooks (get_user, login_url, ...).",
        env="BOKEH_AUTH_MODULE",
    ),
    _s(
        "enable_xsrf_cookies",
        "Check XSRF cookies on POST/PUT/DELETE requests.",
        env="BOKEH_XSRF_COOKIES",
        kind="bool",
    ),
    _s("exclude_headers", "Request headers not passed to apps.", kind="list", metavar="HEADER"),
    _s("exclude_cookies", "Request cookies not passed to apps.", kind="list", metavar="COOKIE"),
    _s("include_headers", "The only request headers passed to apps.", kind="list", metavar="HEADER"),
    _s("include_cookies", "The only request cookies passed to apps.", kind="list", metavar="COOKIE"),
    _s("cookie_secret", "Secret for signed cookies.", env="BOKEH_COOKIE_SECRET", metavar="COOKIE_SECRET"),
    _s("index", "Tornado template file for the index page.", metavar="INDEX"),
    _s("disable_index", "Do not serve an index page at /.", kind="bool"),
    _s("disable_index_redirect", "Show the index page even when there is a single app.", kind="bool"),
    _s(
        "num_procs",
        "Number of worker processes sharing the listening socket; 0 = one per CPU (default: 1).",
        kind="int",
        metavar="N",
    ),
    _s(
        "shutdown_timeout",
        "Seconds a SIGTERM/SIGHUP/SIGINT shutdown may take before the process exits anyway, with status 3 "
        "if a callback or hook was still running (default: 10). Aperture only.",
        kind="int",
        metavar="SECONDS",
    ),
    _s(
        "header_timeout",
        "Seconds a client may take to send a request's headers, counted from when its connection "
        "opens or its previous response ends; slower or idle connections are closed (default: 60). "
        "Aperture only.",
        env="APERTURE_HEADER_TIMEOUT",
        kind="int",
        metavar="SECONDS",
    ),
    _s(
        "shutdown_delay",
        "Seconds that SIGTERM/SIGHUP keep the server up with /readyz answering 503 before it drains, so "
        "load balancers polling /readyz stop sending users first; applies only if /readyz has been "
        "requested since start-up, counts inside --shutdown-timeout (at most half of it is used); "
        "SIGINT skips it (default: 3). Aperture only.",
        env="APERTURE_SHUTDOWN_DELAY",
        kind="int",
        metavar="SECONDS",
    ),
    _s(
        "session_reconnect_window",
        "Seconds after a token expired during which a page may still reconnect with it; 0 disables "
        "(default: 86400). Aperture only.",
        kind="int",
        metavar="SECONDS",
    ),
    _s(
        "session_token_expiration",
        "Seconds a new session token is valid for (default: 300).",
        kind="int",
        metavar="N",
    ),
    _s(
        "websocket_max_message_size",
        "Largest websocket message accepted, in bytes (default: 20971520).",
        kind="int",
        metavar="BYTES",
    ),
    _s(
        "websocket_compression_level",
        "Enable permessage-deflate at this zlib level.",
        kind="int",
        metavar="LEVEL",
    ),
    _s("websocket_compression_mem_level", "zlib memory level for compression.", kind="int", metavar="LEVEL"),
    _s(
        "callback_threads",
        "Threads that run app callbacks and message handling, so one slow callback stalls only its own "
        "session; 0 runs them on the event loop like bokeh serve (default: 8). Aperture only.",
        kind="int",
        metavar="N",
    ),
    _s(
        "advertise_address",
        "HOST:PORT where the other instances of this deployment reach this one, to relay websockets "
        "to the instance that built a session (default: 127.0.0.1 or --address, with the port). "
        "Aperture only.",
        metavar="HOST:PORT",
    ),
    _s(
        "session_store",
        "Keep every session's state in this Redis (redis://HOST:PORT/DB, rediss:// for TLS, a password "
        "as redis://:PASSWORD@HOST...), so that a session survives the loss or restart of the process "
        "running it: another instance sharing the store rebuilds it with its widget values and data. "
        "Also decides which instance owns a session for relays (see --advertise-address). Aperture "
        "only.",
        env="APERTURE_SESSION_STORE",
        metavar="URL",
    ),
    _s(
        "session_store_flush",
        "With --session-store: milliseconds between writes of the sessions' changes to the store; "
        "changes made in the last interval before a process dies are lost (default: 200). Aperture only.",
        kind="int",
        metavar="MILLISECONDS",
    ),
    _s(
        "worker_restart_limit",
        "With --num-procs: how many worker deaths within --worker-restart-window the supervisor "
        "survives (restarting each after a growing delay); one more and it stops the server with exit "
        "status 1 (default: 10). Aperture only.",
        kind="int",
        metavar="N",
    ),
    _s(
        "worker_restart_window",
        "Seconds over which --worker-restart-limit counts worker deaths (default: 60). Aperture only.",
        kind="int",
        metavar="SECONDS",
    ),
    _s(
        "no_accelerate",
        "Do Bokeh's document work (serialization, model construction) with Bokeh's own code paths only, "
        "without Aperture's accelerators (which give identical results, faster; they are active only on the "
        "Bokeh versions they were verified against). Also APERTURE_ACCELERATE=no. Aperture only.",
        kind="bool",
    ),
    _s(
        "metrics",
        "Serve Prometheus metrics at PREFIX/metrics (text format; no login needed, so restrict who can reach "
        "it, see docs/operations.md). With --num-procs one scrape covers every worker. Aperture only.",
        kind="bool",
    ),
    _s(
        "max_sessions",
        "Most sessions one process holds; past it a new page view gets 503 with Retry-After and /readyz "
        "answers 503 until sessions end; 0 = no limit (default: 0). Aperture only.",
        env="APERTURE_MAX_SESSIONS",
        kind="int",
        metavar="N",
    ),
    _s(
        "max_sessions_per_app",
        "Most sessions one app holds in one process (as --max-sessions, per app); 0 = no limit "
        "(default: 0). Aperture only.",
        env="APERTURE_MAX_SESSIONS_PER_APP",
        kind="int",
        metavar="N",
    ),
    _s(
        "slow_callback_ms",
        "Log a warning, with the app and session, for every app callback or message that takes longer than "
        "this many milliseconds, and count it in the metrics; 0 = off (default: 0). Aperture only.",
        env="APERTURE_SLOW_CALLBACK_MS",
        kind="int",
        metavar="MILLISECONDS",
    ),
    _s(
        "admin",
        "Serve an admin page at PREFIX/admin: sessions per app, memory and CPU, recent errors, live. Only "
        "users named by --admin-users may see it when an auth module is configured; without one, only "
        "requests from this machine that no proxy forwarded. Aperture only.",
        kind="bool",
    ),
    _s(
        "admin_users",
        "With --admin and --auth-module: the users (as get_user names them) who may see the admin page.",
        kind="list",
        metavar="USER",
    ),
    _s(
        "access_log",
        "Log one line per HTTP request and per websocket session end, at info level on the aperture.access "
        "logger: yes or no (default: yes). Aperture only.",
        env="APERTURE_ACCESS_LOG",
        kind="choice",
        choices=("yes", "no"),
    ),
    _s(
        "setup",
        "Python script run once in every server process before it serves (in each worker with --num-procs), "
        "as panel serve --setup. Aperture only.",
        metavar="SCRIPT",
    ),
    _s(
        "warm",
        "Build each app's document once at start-up and discard it, so imports and caches are warm before "
        "the first visitor (as panel serve --warm). Aperture only.",
        kind="bool",
    ),
    _s(
        "oidc_issuer",
        "Sign users in with this OpenID Connect provider (its issuer URL; https, or http on loopback): "
        "every page, websocket and app file then needs a signed-in user. Excludes --auth-module. Needs "
        "--oidc-client-id, a client secret (APERTURE_OIDC_CLIENT_SECRET or --oidc-client-secret-file) and "
        "BOKEH_SECRET_KEY or --cookie-secret, the same on every instance. Aperture only.",
        env="APERTURE_OIDC_ISSUER",
        metavar="URL",
    ),
    _s(
        "oidc_client_id",
        "The client id registered with the provider.",
        env="APERTURE_OIDC_CLIENT_ID",
        metavar="ID",
    ),
    _s(
        "oidc_client_secret_file",
        "File holding the client secret (instead of APERTURE_OIDC_CLIENT_SECRET; never on the command line).",
        metavar="PATH",
    ),
    _s(
        "oidc_scopes",
        "Scopes to ask for (default: openid profile email; 'openid' is always added).",
        kind="list",
        metavar="SCOPE",
    ),
    _s(
        "oidc_user_claim",
        "The id_token claim that names the user (default: preferred_username, else email, else sub).",
        metavar="CLAIM",
    ),
    _s(
        "oidc_allowed_users",
        "Only these users (as the user claim names them) may sign in.",
        kind="list",
        metavar="USER",
    ),
    _s(
        "oidc_allowed_groups",
        "Only members of one of these groups (or roles) may sign in; see --oidc-groups-claim.",
        kind="list",
        metavar="GROUP",
    ),
    _s(
        "oidc_groups_claim",
        "The claim listing the user's groups or roles (default: groups).",
        metavar="CLAIM",
    ),
    _s(
        "oidc_pass_claims",
        "Claims apps may read from session_context.request.claims (default: the user claim only).",
        kind="list",
        metavar="CLAIM",
    ),
    _s(
        "oidc_redirect_url",
        "The callback URL the provider sends users back to, as the browser sees it behind a proxy "
        "(default: made from the request: <scheme>://<host><prefix>/oidc/callback).",
        env="APERTURE_OIDC_REDIRECT_URL",
        metavar="URL",
    ),
    _s("glob", "Expand app paths as glob patterns.", kind="bool"),
)

SETTINGS_BY_NAME = {s.name: s for s in SETTINGS}

"""The Prometheus metric families Aperture exports, and the label values each may take.

Every label value comes from a closed set the server knows at start-up: app routes, the four
client request types, callback kinds, handler classes, HTTP statuses, error kinds named in code.
Nothing a client sends (a path, a message type, a header) ever becomes a label value, so a client
cannot grow the number of series. Children of labelled metrics are bound once and cached: the
hot paths do one dict lookup and one `inc`/`observe`.

Made once per process, after the server started (`metrics.MetricsObserver.server_started`), so a
`--num-procs` supervisor that built a `Server` before forking holds none of them. With
`multiprocess` the values live in prometheus-client's per-process files (see
`metrics_multiprocess`): gauges then say how workers combine (`livesum`: summed over live workers;
`liveall`: one series per live worker, labelled `pid`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Seconds; chosen around what an interactive app feels (a few ms) up to a stuck one.
FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BUILD_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

MESSAGE_TYPES = ("PULL-DOC-REQ", "PATCH-DOC", "PUSH-DOC", "SERVER-INFO-REQ")
CALLBACK_KINDS = ("periodic", "timeout", "next_tick")
SESSION_STATES = ("live", "connected", "idle")
ADMISSION_SCOPES = ("process", "app")
OTHER = "other"

ENDPOINTS = {
    "AppPageHandler": "page",
    "AutoloadHandler": "autoload",
    "MetadataHandler": "metadata",
    "BokehWebSocket": "websocket",
    "AppStaticHandler": "static",
    "BokehJSHandler": "static",
    "ExtensionHandler": "static",
    "IndexHandler": "index",
    "HealthHandler": "healthz",
    "ReadyHandler": "readyz",
    "FaviconHandler": "favicon",
    "MetricsHandler": "metrics",
    "ErrorHandler": "not_found",  # Tornado's answer to a path no route matches
    "RedirectHandler": "redirect",
}
ERROR_KINDS = (  # made at start, so rates work from zero; other kinds named in code are added when seen
    "origin",  # websocket Origin refused
    "auth",  # websocket refused by the auth module
    "bad_token",  # malformed, forged or expired session token or id
    "bad_message",  # a websocket message that breaks the protocol (connection closed)
    "bad_frame",  # a frame the WebSocket layer refused (too big, malformed)
    "bad_request",  # a well-formed message the session cannot carry out (ERROR reply)
    "oidc",  # an OpenID Connect sign-in refused (--oidc-issuer)
    "message",  # app code raised while a message was handled (ERROR reply)
    "callback",  # an app timer callback raised
    "relay",  # a relayed websocket's owner was unreachable or went away
    "store",  # the session store failed
)
MAX_ERROR_KINDS = 64
_ERROR_KIND = re.compile(r"[a-z][a-z0-9_]{0,39}\Z")


def endpoint_of(handler_class: type) -> str:
    """The fixed endpoint name of a Tornado handler class (never derived from the request)."""
    name = ENDPOINTS.get(handler_class.__name__)
    if name is not None:
        return name
    if handler_class.__name__.startswith("Admin") or handler_class.__module__.startswith(
        "aperture.web.admin"
    ):
        return "admin"
    return OTHER


class AppSeries:
    """The children of one app's labelled metrics, bound once."""

    def __init__(self, f: Families, app: str) -> None:
        self.created = f.sessions_created.labels(app)
        self.destroyed = f.sessions_destroyed.labels(app)
        self.build_failed = f.build_failures.labels(app)
        self.build_seconds = f.build_seconds.labels(app)
        self.pull_seconds = f.pull_seconds.labels(app)
        self.pull_bytes = f.pull_bytes.labels(app)
        self.messages = {t: f.message_seconds.labels(app, t) for t in (*MESSAGE_TYPES, OTHER)}
        self.callbacks = {k: f.callback_seconds.labels(app, k) for k in (*CALLBACK_KINDS, OTHER)}
        self.slow = f.slow_callbacks.labels(app)
        self.websockets = f.websockets_open.labels(app)
        self.relayed = f.websockets_relayed.labels(app)
        self.sent = f.bytes_sent.labels(app)
        self.refused = {s: f.admission_refused.labels(app, s) for s in ADMISSION_SCOPES}
        self.sessions = {s: f.sessions.labels(app, s) for s in SESSION_STATES}


class Families:
    """Every metric Aperture exports (bar `aperture_info`, which the scrape adds)."""

    def __init__(self, apps: Iterable[str], *, multiprocess: bool) -> None:
        # Multiprocess values are read back from files by the scrape: nothing is registered.
        self.registry: CollectorRegistry | None = None if multiprocess else CollectorRegistry()
        live_sum: Any = {"multiprocess_mode": "livesum"}
        per_worker: Any = {"multiprocess_mode": "liveall"}
        r = self.registry

        self.sessions = Gauge(
            "aperture_sessions",
            "Sessions held, by app and state: live (all), connected (with a websocket), idle (without).",
            ["app", "state"], registry=r, **live_sum,
        )  # fmt: skip
        self.sessions_created = Counter(
            "aperture_sessions_created", "Sessions whose document was built.", ["app"], registry=r
        )
        self.sessions_destroyed = Counter(
            "aperture_sessions_destroyed",
            "Sessions discarded (unused, shut down or moved).",
            ["app"],
            registry=r,
        )
        self.build_failures = Counter(
            "aperture_session_build_failures",
            "Session builds in which the app raised (the page answered 500).",
            ["app"], registry=r,
        )  # fmt: skip
        self.build_seconds = Histogram(
            "aperture_session_build_seconds",
            "Time to build a session's document, on_session_created hooks included.",
            ["app"], buckets=BUILD_BUCKETS, registry=r,
        )  # fmt: skip
        self.pull_seconds = Histogram(
            "aperture_pull_doc_seconds",
            "PULL-DOC: from the request's arrival until the whole document was queued to the client.",
            ["app"], buckets=FAST_BUCKETS, registry=r,
        )  # fmt: skip
        self.pull_bytes = Counter(
            "aperture_pull_doc_bytes", "Size of the PULL-DOC replies (characters of text plus buffers).",
            ["app"], registry=r,
        )  # fmt: skip
        self.message_seconds = Histogram(
            "aperture_message_seconds",
            "Client messages, from arrival until the reply was queued, by app and message type.",
            ["app", "msgtype"], buckets=FAST_BUCKETS, registry=r,
        )  # fmt: skip
        self.callback_seconds = Histogram(
            "aperture_callback_seconds",
            "App callbacks (timers), from due until returned (waiting for the session's lock included).",
            ["app", "kind"], buckets=FAST_BUCKETS, registry=r,
        )  # fmt: skip
        self.slow_callbacks = Counter(
            "aperture_slow_callbacks",
            "Callbacks and messages that took longer than --slow-callback-ms.",
            ["app"], registry=r,
        )  # fmt: skip
        self.websockets_open = Gauge(
            "aperture_websockets_open", "Websockets served by this server's sessions.", ["app"],
            registry=r, **live_sum,
        )  # fmt: skip
        self.websockets_relayed = Gauge(
            "aperture_websockets_relayed",
            "Websockets relayed to the worker or instance that owns their session.",
            ["app"], registry=r, **live_sum,
        )  # fmt: skip
        self.bytes_sent = Counter(
            "aperture_websocket_sent_bytes", "Websocket bytes written to clients.", ["app"], registry=r
        )
        self.requests = Counter(
            "aperture_http_requests",
            "HTTP requests (and websocket upgrades) by endpoint, app and status.",
            ["endpoint", "app", "status"], registry=r,
        )  # fmt: skip
        self.request_seconds = Histogram(
            "aperture_http_request_seconds", "HTTP request durations by endpoint.", ["endpoint"],
            buckets=FAST_BUCKETS, registry=r,
        )  # fmt: skip
        self.errors = Counter("aperture_errors", "Errors an operator counts, by kind.", ["kind"], registry=r)
        self.admission_refused = Counter(
            "aperture_admission_refused",
            "New sessions refused because the process or the app was full.",
            ["app", "scope"], registry=r,
        )  # fmt: skip
        self.loop_lag = Histogram(
            "aperture_event_loop_lag_seconds",
            "How late a periodic probe timer fired on the event loop.",
            buckets=LAG_BUCKETS, registry=r,
        )  # fmt: skip
        self.loop_lag_max = Gauge(
            "aperture_event_loop_lag_max_seconds",
            "The worst probe delay of the last sampling period (per worker with --num-procs).",
            registry=r, **per_worker,
        )  # fmt: skip
        self.cpu_seconds = Gauge(
            "aperture_process_cpu_seconds", "CPU time (user + system) this process used.",
            registry=r, **per_worker,
        )  # fmt: skip
        self.memory_bytes = Gauge(
            "aperture_process_resident_memory_bytes", "Resident memory of this process.",
            registry=r, **per_worker,
        )  # fmt: skip
        self.apps = {app: AppSeries(self, app) for app in apps}
        self._endpoints: dict[type, str] = {}
        self._requests: dict[tuple[str, str, int], Any] = {}
        self._durations: dict[str, Any] = {}
        self._errors: dict[str, Any] = {kind: self.errors.labels(kind) for kind in ERROR_KINDS}

    def request(self, handler_class: type, app: str, status: int) -> tuple[Any, Any]:
        """(counter child, duration child) for a finished request."""
        endpoint = self._endpoints.get(handler_class)
        if endpoint is None:
            endpoint = self._endpoints[handler_class] = endpoint_of(handler_class)
        if app not in self.apps:
            app = ""
        if not 100 <= status <= 599:
            status = 0
        key = (endpoint, app, status)
        counter = self._requests.get(key)
        if counter is None:
            counter = self._requests[key] = self.requests.labels(endpoint, app, str(status))
        duration = self._durations.get(endpoint)
        if duration is None:
            duration = self._durations[endpoint] = self.request_seconds.labels(endpoint)
        return counter, duration

    def error(self, kind: str) -> Any:
        child = self._errors.get(kind)
        if child is None:
            if not _ERROR_KIND.match(kind) or len(self._errors) >= MAX_ERROR_KINDS:
                kind = OTHER
            child = self._errors.get(kind) or self.errors.labels(kind)
            self._errors[kind] = child
        return child

"""The framework-neutral server: apps, sessions, tokens and periodic jobs.

`ServerCore` knows nothing about HTTP libraries. The web layer hands it plain
`IncomingRequest`s and gets back sessions and tokens, or a `RequestRefused` with the
status to answer. It decides which session a page, an autoload script or a
websocket belongs to (creating it if needed), what goes into a new token, and runs
the jobs that keep a process healthy: unused-session clean-up and statistics.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import inspect
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from bokeh.application import Application

from aperture.apps.runner import AppRunner
from aperture.config import Config
from aperture.errors import (
    CLOSE_GOING_AWAY,
    PeerError,
    RequestRefused,
    SessionError,
    SessionLimitReached,
    TokenError,
)
from aperture.identity.flow import SESSION_COOKIE as SIGN_IN_COOKIES
from aperture.operations.admission import Admission
from aperture.operations.observer import Observers
from aperture.peers import Destination, Peers
from aperture.protocol import MessageIds
from aperture.security import tokens
from aperture.sessions.context import RequestData
from aperture.sessions.registry import SessionRegistry, seconds_left
from aperture.sessions.session import Session
from aperture.store.keeper import StoreKeeper
from aperture.store.redis_store import SessionRecord, StoreUnavailable
from aperture.store.snapshot import StoredState

log = logging.getLogger("aperture.server")

YOUNG_GC_THRESHOLD = 10_000
"""Net allocations between collections of the youngest generation (CPython's default: 700)."""
PUBLISH_SESSIONS_MS = 500
"""With `--num-procs` and session limits: how often a worker republishes its session count anyway
(it also does on every change it makes itself), so sessions destroyed elsewhere show up soon."""


@dataclass
class IncomingRequest:
    """What the core needs from an HTTP request (or a websocket upgrade)."""

    arguments: dict[str, list[bytes]] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)
    source: Any = None
    user: str | None = None  # the signed-in user (built-in sign-in), for session_context.request
    claims: dict[str, Any] = field(default_factory=dict)

    def argument(self, name: str) -> str | None:
        values = self.arguments.get(name)
        return values[-1].decode("utf-8", "replace") if values else None

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None


@dataclass(frozen=True)
class WebsocketPlan:
    """Where a websocket's session is served: relayed to `destination`, or here - taken over from
    the store's `takeover` record (when the relay fails too), or found or built as usual."""

    destination: Destination | None = None
    takeover: SessionRecord | None = None


def _filtered(values: Mapping[str, str], include: Any, exclude: Any) -> dict[str, str]:
    if include is not None:
        return {k: v for k, v in values.items() if k in include}
    if exclude is not None:
        return {k: v for k, v in values.items() if k not in exclude}
    return dict(values)


def _freeze_startup_heap() -> None:
    """Spare the cyclic collector work that finds nothing, once the apps are loaded.

    Under a page-view load (bench S1 hello, 32 users) the collector's full passes took a quarter
    of the server's CPU (3.5 s in 19 s) and found 3 objects: sessions are freed by reference
    counting (`Session.release` cuts their cycles), yet every full pass walked every live one,
    and the thousands of closed sessions kept for `--unused-session-lifetime`, and the whole
    start-up heap (Bokeh, Tornado, the apps' modules: about 120 000 objects) besides.

    * `gc.freeze()` exempts what is alive now from the collector's passes; garbage is collected
      first, so no dead cycle is kept for good, and frozen objects are still freed by reference
      counting;
    * the youngest generation is collected every 10 000 net allocations instead of 700, so far
      fewer objects age into the full passes (3 instead of 15 there, 0.6 s instead of 3.5 s).
      Cyclic garbage still goes, a few thousand allocations later. A threshold already raised,
      or 0 (automatic collection off), is left as it is.
    """
    gc.collect()
    gc.freeze()
    young, middle, old = gc.get_threshold()
    if 0 < young < YOUNG_GC_THRESHOLD:
        gc.set_threshold(YOUNG_GC_THRESHOLD, middle, old)


class ServerCore:
    """All apps of one server process."""

    def __init__(
        self,
        config: Config,
        applications: Mapping[str, Application],
        *,
        clock: Callable[[], float] = time.monotonic,
        logout_url: str | None = None,
    ) -> None:
        self.config = config
        self.ids = MessageIds()
        self.observer = Observers()  # metrics, access log, admin view: see aperture/operations
        self.executor = (
            ThreadPoolExecutor(config.callback_threads, thread_name_prefix="aperture-app")
            if config.callback_threads > 0
            else None
        )
        self.apps: dict[str, SessionRegistry] = {
            route: SessionRegistry(
                AppRunner(route, app),
                ids=self.ids,
                clock=clock,
                logout_url=logout_url,
                executor=self.executor,
                observer=self.observer,
                slow_callback_ms=config.slow_callback_ms,
            )
            for route, app in applications.items()
        }
        self.admission = Admission(config, self.apps, self.observer)  # --max-sessions(-per-app)
        self._jobs: list[asyncio.Task[None]] = []
        self._started = False
        self._draining = False
        self.loaded = False  # every app's on_server_loaded hooks have finished
        self.readiness_polled = False  # something asked /readyz: a balancer to tell before stopping
        self.activity: str | None = None  # the server-wide hook running now (for the watchdog's report)
        self._loaded_apps: list[SessionRegistry] = []
        self._gate: asyncio.Event | None = None  # set once requests may go ahead: loaded or draining
        self.peers = Peers(key=None)  # who else serves this deployment (set by the Server)
        self.keeper: StoreKeeper | None = None  # the session store, if any (see attach_store)
        self.on_session_moved: Callable[[Session], None] | None = None  # closes its websockets
        self.startup_steps: list[Callable[[ServerCore], Awaitable[None]]] = []  # run by start()

    def attach_store(self, keeper: StoreKeeper) -> None:
        """Keep every app's sessions in the session store from now on."""
        self.keeper = keeper
        keeper.on_lost = self._session_moved
        for registry in self.apps.values():
            registry.keeper = keeper

    def _session_moved(self, session: Session) -> None:
        """Another process took over one of our sessions: drop this copy, whose clients reconnect."""
        if self.on_session_moved is not None:
            self.on_session_moved(session)
        registry = self.apps.get(session.app)
        if registry is not None and registry.get(session.id) is session:
            asyncio.get_running_loop().create_task(registry.destroy(session))

    # -- lifecycle ---------------------------------------------------------------

    @property
    def draining(self) -> bool:
        """Shutdown has begun: `/readyz` answers 503 and no new session is made."""
        return self._draining

    @draining.setter
    def draining(self, value: bool) -> None:
        self._draining = value
        if value and self._gate is not None:
            self._gate.set()  # requests held during start-up are refused now

    @property
    def ready(self) -> bool:
        """What `/readyz` reports: the apps are loaded and shutdown has not begun."""
        return self.loaded and not self._draining

    async def until_started(self) -> None:
        """Hold a request that came while `on_server_loaded` hooks still run, until they finish
        (or shutdown begins: the caller then refuses it)."""
        if self.loaded or self._draining:
            return
        if self._gate is None:
            self._gate = asyncio.Event()
        await self._gate.wait()

    async def start(self) -> None:
        """Run every app's `on_server_loaded` hooks (awaiting async ones), then the periodic jobs.

        Sessions are made only afterwards (`until_started`). Cancelling this - a stop during
        start-up - cancels the hook that is running; `stop` still unloads the apps it reached.
        """
        if self._started:
            return
        self._started = True
        for registry in self.apps.values():
            self._loaded_apps.append(registry)
            self.activity = f"on_server_loaded of app {registry.url}"
            pending = registry.runner.server_loaded(registry.server_context)
            try:
                for awaitable in pending:
                    try:
                        await awaitable
                    except Exception:
                        log.exception("Error in on_server_loaded of app %s", registry.url)
            finally:
                for awaitable in pending:
                    if (
                        inspect.iscoroutine(awaitable)
                        and inspect.getcoroutinestate(awaitable) == "CORO_CREATED"
                    ):
                        awaitable.close()  # not started because start-up was cancelled: no warning
        for step in self.startup_steps:  # e.g. --warm: after the hooks, before the first visitor
            await step(self)
        self.activity = None
        _freeze_startup_heap()
        self.loaded = True
        if self._gate is not None:
            self._gate.set()
        self.observer.server_started(self)
        cfg = self.config
        self.admission.share_with(self.peers.workers)
        if self.admission.limited and self.peers.workers is not None:
            self._every(PUBLISH_SESSIONS_MS, self._publish_sessions)
        self._every(cfg.check_unused_sessions, self._discard_unused)
        self._every(cfg.stats_log_frequency, self._log_stats)
        if cfg.mem_log_frequency > 0:
            self._every(cfg.mem_log_frequency, self._log_memory)

    def busy_sessions(self) -> int:
        """Sessions in the middle of a locked operation (a message or callback in flight)."""
        return sum(1 for r in self.apps.values() for s in r.live_sessions() if s.busy)

    async def quiesce(self, deadline: float | None = None) -> None:
        """Stop every session's timers, each once its running callback has returned (shutdown),
        so no new callback starts; waits until `deadline` (time.monotonic) at most."""
        sessions = [s for r in self.apps.values() for s in r.live_sessions()]
        waits = [asyncio.ensure_future(s.stop_callbacks_when_idle()) for s in sessions]
        if not waits:
            return
        _, late = await asyncio.wait(waits, timeout=seconds_left(deadline))
        for wait in late:
            wait.cancel()

    async def stop(
        self, *, work_deadline: float | None = None, hook_deadline: float | None = None
    ) -> list[str]:
        """Destroy every session and unload the apps; returns what was left running.

        Sessions go once their running callback returns, or at `work_deadline` regardless
        (see `SessionRegistry.destroy_all`); hooks still running at `hook_deadline` are
        cancelled. `on_server_unloaded` runs for every app whose `on_server_loaded` ran.
        """
        self.draining = True
        self.observer.server_stopping()
        for job in self._jobs:
            job.cancel()
        self._jobs.clear()
        if self.keeper is not None:  # the sessions live on in other instances: hand them over
            await self.keeper.stop(hand_over=True)
        left: list[str] = []
        for lines in await asyncio.gather(
            *(r.destroy_all(work_deadline, hook_deadline) for r in self.apps.values())
        ):
            left.extend(lines)
        for registry in self._loaded_apps:
            self.activity = f"on_server_unloaded of app {registry.url}"
            try:
                await asyncio.wait_for(
                    registry.runner.server_unloaded(registry.server_context), seconds_left(hook_deadline)
                )
            except TimeoutError:
                log.error(
                    "on_server_unloaded of app %s did not finish by the shutdown deadline", registry.url
                )
                left.append(f"{self.activity} is still running")
        self.activity = None
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
        return left

    async def flush_store(self) -> None:
        """Write every session's pending changes to the session store now (shutdown)."""
        if self.keeper is not None:
            try:
                await self.keeper.flush()
            except Exception:
                log.exception("Error writing to the session store")

    def still_running(self) -> list[str]:
        """What keeps shutdown from finishing, one line each; the watchdog calls this from its thread."""
        lines = [self.activity] if self.activity else []
        for route, registry in list(self.apps.items()):
            lines.extend(sorted(registry.hooks_running))
            lines.extend(
                f"a callback of session {s.id[:12]!r} of app {route} is still running"
                for s in registry.live_sessions()
                if s.busy
            )
        return lines

    def _every(self, milliseconds: int, job: Callable[[], Awaitable[None]]) -> None:
        async def loop() -> None:
            while True:
                await asyncio.sleep(milliseconds / 1000)
                try:
                    await job()
                except Exception:
                    log.exception("Error in periodic server job %s", job.__name__)

        self._jobs.append(asyncio.get_running_loop().create_task(loop()))

    async def _discard_unused(self) -> None:
        for registry in self.apps.values():
            await registry.discard_unused(self.config.unused_session_lifetime / 1000)
        self.admission.publish()

    async def _publish_sessions(self) -> None:
        self.admission.publish()

    async def _log_stats(self) -> None:
        for route, registry in self.apps.items():
            sessions = registry.live_sessions()
            unused = sum(1 for s in sessions if s.connection_count == 0)
            log.debug("[pid %d] %s has %d sessions with %d unused", os.getpid(), route, len(sessions), unused)

    async def _log_memory(self) -> None:
        with open("/proc/self/statm") as statm:
            vms, rss = (int(x) * os.sysconf("SC_PAGE_SIZE") / 2**20 for x in statm.read().split()[:2])
        log.info("[pid %d] Memory usage: %.2f MB (RSS), %.2f MB (VMS)", os.getpid(), rss, vms)

    # -- request context and tokens ---------------------------------------------

    def _visible(self, request: IncomingRequest) -> tuple[dict[str, str], dict[str, str]]:
        """Headers and cookies of a live request that apps may see (--include/--exclude-*).

        Header names match in any case, as HTTP means them. The Cookie header is rebuilt for the
        app from the kept cookies (so --include/--exclude-cookies shape it too) unless
        --include-headers names it; when --exclude-headers names it, the app sees neither the
        header nor the cookies it carries (which would otherwise put it back). The built-in
        sign-in's cookies are never among them (apps read `request.user` and `.claims`).
        """
        cfg = self.config
        include = None if cfg.include_headers is None else {name.lower() for name in cfg.include_headers}
        exclude = {name.lower() for name in cfg.exclude_headers or ()}
        headers = {
            name: value
            for name, value in request.headers.items()
            if (include is None or name.lower() in include) and name.lower() not in exclude
        }
        if "cookie" in exclude:
            return headers, {}
        if include is None or "cookie" not in include:
            headers = {name: value for name, value in headers.items() if name.lower() != "cookie"}
        cookies = {k: v for k, v in request.cookies.items() if not k.startswith(SIGN_IN_COOKIES)}
        return headers, _filtered(cookies, cfg.include_cookies, cfg.exclude_cookies)

    def _token_for(self, session_id: str, registry: SessionRegistry, request: IncomingRequest) -> str:
        """A token for a page: arguments and `process_request` output, never headers or cookies.

        Headers and cookies (HttpOnly ones, `Authorization`) stay on the server: the session made
        by this request keeps them, and a session made later from the token takes them from the
        websocket upgrade, which the browser sends with the same cookies. That keeps tokens small
        and keeps credentials out of page scripts' reach.
        """
        cfg = self.config
        extra: dict[str, Any] = {"arguments": request.arguments}
        extra.update(registry.runner.process_request(request.source))
        extra.update(self.peers.hint_for(registry.runner.route, session_id))
        return tokens.generate_token(
            session_id,
            secret=cfg.secret_key,
            signed=cfg.sign_sessions,
            expiration=cfg.session_token_expiration,
            extra=extra,
        )

    def _context(
        self, payload: Mapping[str, Any], request: IncomingRequest, *, trust_payload: bool
    ) -> tuple[RequestData, dict[str, Any]]:
        """What `session_context.request` and `.token_payload` show for a new session.

        Headers and cookies come from the live request unless the token carries them and is
        trusted (signed with our key: minted by a key holder). Arguments come from the token
        when it has them (the page's query), else from the live request. The signed-in user and
        claims always come from the live request: they are never put in a token.
        """
        headers, cookies = self._visible(request)
        if trust_payload and ("headers" in payload or "cookies" in payload):
            headers = dict(payload.get("headers", {}))
            cookies = dict(payload.get("cookies", {}))
        arguments = payload.get("arguments", request.arguments)
        data = RequestData(
            arguments=arguments,
            cookies=cookies,
            headers=headers,
            source=request.source,
            user=request.user,
            claims=request.claims,
        )
        visible = {k: v for k, v in payload.items() if not k.startswith("__ap_")}
        visible.update(headers=data.headers, cookies=cookies, arguments=arguments)
        return data, visible

    # -- sessions for HTTP requests ------------------------------------------------

    def _requested_id(self, request: IncomingRequest) -> tuple[str | None, str | None]:
        """(session id, token) the request asks for, checked for conflicts."""
        arg_id = request.argument("bokeh-session-id")
        header_id = request.header("Bokeh-Session-Id")
        if arg_id is not None and header_id is not None:
            raise RequestRefused(403, "session ID was provided as an argument and header")
        session_id = arg_id if arg_id is not None else header_id
        token = request.argument("bokeh-token")
        if token is not None and session_id is not None:
            raise RequestRefused(403, "Both token and session ID were provided")
        return session_id, token

    async def session_for_request(self, route: str, request: IncomingRequest) -> tuple[Session, str]:
        """The session (and a fresh token for it) that a page or autoload request asks for."""
        registry = self.apps[route]
        cfg = self.config
        await self.until_started()
        if self.draining:
            raise RequestRefused(503, "Server is shutting down")
        session_id, token = self._requested_id(request)
        explicit = session_id is not None or token is not None
        if token is not None:
            try:
                session_id = tokens.get_session_id(token)
            except TokenError as exc:
                raise RequestRefused(400, f"Invalid token: {exc.reason}") from None
        elif session_id is None:
            if not cfg.generate_session_ids:
                raise RequestRefused(403, "No bokeh-session-id provided")
            session_id = tokens.generate_session_id(cfg.secret_key, cfg.sign_sessions)
            self.admission.check(route, session_id)  # before process_request runs for the token
        if not session_id:
            raise RequestRefused(400, "Session ID must not be empty")
        if token is None:
            if not tokens.check_session_id_signature(session_id, cfg.secret_key, cfg.sign_sessions):
                log.warning("Session id had an invalid signature: %r", session_id[:100])
                raise RequestRefused(403, "Invalid token or session ID")
            token = self._token_for(session_id, registry, request)
        elif not tokens.check_token_signature(token, cfg.secret_key, cfg.sign_sessions):
            log.warning("Token for session %r had an invalid signature", session_id[:100])
            raise RequestRefused(403, "Invalid token or session ID")
        payload = tokens.get_token_payload(token)
        data, visible = self._context(payload, request, trust_payload=cfg.sign_sessions)
        stored, keep = None, True
        if explicit and self.keeper is not None and registry.get(session_id) is None:
            stored, keep = await self._stored_for_page(route, session_id)
        # A session taken over from the store, or a copy of one another process owns, is an existing
        # user's: only a brand-new session is held to the limits (the caller reports a refusal).
        with self.admission.admitting(route, session_id, check=stored is None and keep):
            session = await registry.get_or_create(
                session_id, request=data, token=token, payload=visible, stored=stored, keep=keep
            )
        return session, token

    async def _stored_for_page(
        self, route: str, session_id: str
    ) -> tuple[tuple[SessionRecord, StoredState] | None, bool]:
        """For a page naming a session the store may know: (state to take over, keep it here)."""
        assert self.keeper is not None
        try:
            record = await self.keeper.record(route, session_id)
            if record is None:
                return None, True
            if (
                record.owner
                and record.owner != self.keeper.identity
                and await self.keeper.owner_alive(record.owner)
            ):
                return None, False  # its owner lives: this page gets a copy, its websocket is relayed
            return await self._take_over(route, session_id, record), True
        except StoreUnavailable:
            return None, True

    # -- sessions for websockets ---------------------------------------------------

    def verify_token(self, token: str) -> tokens.VerifiedToken:
        """Check a websocket token. An expired one passes here (marked `expired`) while it is within
        `--session-reconnect-window`: it may then only resume a session the deployment knows, which
        `session_for_websocket` (or the owner it is relayed to) decides."""
        cfg = self.config
        try:
            return tokens.verify_token(token, secret=cfg.secret_key, signed=cfg.sign_sessions)
        except TokenError as exc:
            if exc.reason != "token has expired" or cfg.session_reconnect_window <= 0:
                raise
            grace_now = tokens.utc_now() - cfg.session_reconnect_window
            verified = tokens.verify_token(
                token, secret=cfg.secret_key, signed=cfg.sign_sessions, now=grace_now
            )
            return dataclasses.replace(verified, expired=True)

    async def plan_websocket(
        self, route: str, verified: tokens.VerifiedToken, hop: str | None
    ) -> WebsocketPlan:
        """Where a websocket's session lives. With a session store, the store says (the token's hint
        is not consulted); while the store is down, or without one, the signed owner hint does."""
        registry = self.apps[route]
        session_id = verified.session_id
        existing = registry.get(session_id)
        keeper = self.keeper
        if keeper is not None and keeper.available:
            if existing is not None and keeper.is_kept(existing):
                return WebsocketPlan()
            try:
                record = await keeper.record(route, session_id)
                if record is None:
                    return WebsocketPlan()
                if not record.owner or record.owner == keeper.identity:
                    return WebsocketPlan(takeover=record)  # released, or ours before a restart
                destination = self.peers.destination_for_owner(record.owner, hop)
                if destination is not None and await keeper.owner_alive(record.owner):
                    return WebsocketPlan(destination=destination, takeover=record)
                return WebsocketPlan(takeover=record)
            except StoreUnavailable:
                pass  # as without a store
        if existing is not None:
            return WebsocketPlan()
        return WebsocketPlan(destination=self.peers.destination(route, session_id, verified.payload, hop))

    async def _take_over(
        self, route: str, session_id: str, record: SessionRecord
    ) -> tuple[SessionRecord, StoredState] | None:
        """Claim a stored session for this process and read its state; None if that failed and the
        session is to be built afresh (raises SessionError if another process claimed it first)."""
        assert self.keeper is not None
        registry = self.apps[route]
        existing = registry.get(session_id)
        if existing is not None:  # a copy made for a page while another process owned the session
            await registry.destroy(existing)
        try:
            other = await self.keeper.claim(route, session_id, record)
            if other:
                if other != self.keeper.identity:
                    log.info("Session %r of %s was just taken over by %s", session_id[:12], route, other)
                    raise PeerError("session moved to another process; reconnect", CLOSE_GOING_AWAY)
                record = dataclasses.replace(record, owner=other)
            elif other == "":
                log.info(
                    "Session %r of %s left the session store meanwhile; building it afresh",
                    session_id[:12],
                    route,
                )
                return None
            state = await self.keeper.stored_state(route, session_id, record)
        except StoreUnavailable:
            log.warning(
                "Session %r of %s: the session store failed while taking it over; building it afresh",
                session_id[:12],
                route,
            )
            return None
        log.info(
            "Taking over session %r of %s from %s",
            session_id[:12],
            route,
            record.owner or "a stopped instance",
        )
        return record, state

    async def session_for_websocket(
        self,
        route: str,
        verified: tokens.VerifiedToken,
        token: str,
        request: IncomingRequest,
        plan: WebsocketPlan | None = None,
    ) -> Session:
        """The session a websocket opens. A valid token may create it; an expired one may only
        resume a session the deployment knows: live in this process, or recorded in the session
        store (`plan.takeover`), whose first websocket came with a valid token."""
        registry = self.apps[route]
        await self.until_started()
        existing = registry.get(verified.session_id)
        takeover = plan.takeover if plan is not None else None
        if takeover is not None and not (
            existing is not None and self.keeper is not None and self.keeper.is_kept(existing)
        ):
            if verified.expired and not takeover.resumable:
                log.warning(
                    "Refused an expired token for session %r of %s: it was never opened with a valid one",
                    verified.session_id[:12],
                    route,
                )
                raise TokenError("token has expired")
            if self.draining:
                raise SessionError("server is shutting down")
            stored = await self._take_over(route, verified.session_id, takeover)
            data, visible = self._context(verified.payload, request, trust_payload=self.config.sign_sessions)
            with self.admission.admitting(route, verified.session_id, check=False):  # an existing user's
                session = await registry.get_or_create(
                    verified.session_id, request=data, token=token, payload=visible, stored=stored
                )
            session.resumable = session.resumable or not verified.expired
            return session
        if verified.expired:
            if existing is None or not existing.resumable:
                log.warning(
                    "Refused an expired token for session %r of %s: no session to resume here",
                    verified.session_id[:12],
                    route,
                )
                raise TokenError("token has expired")
            log.info("Accepted an expired token to resume session %r", verified.session_id[:12])
            return existing
        if self.draining and existing is None:
            raise SessionError("server is shutting down")
        data, visible = self._context(verified.payload, request, trust_payload=self.config.sign_sessions)
        try:  # a brand-new session (not here, not relayed, not in the store) is held to the limits
            with self.admission.admitting(route, verified.session_id):
                session = await registry.get_or_create(
                    verified.session_id, request=data, token=token, payload=visible
                )
        except SessionLimitReached as refusal:
            self.admission.refused(refusal)  # a websocket is never forwarded: report it here
            raise
        session.resumable = True
        return session

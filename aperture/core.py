"""The framework-neutral server: apps, sessions, tokens and periodic jobs.

`ServerCore` knows nothing about HTTP libraries. The web layer hands it plain
`IncomingRequest`s and gets back sessions and tokens, or a `RequestRefused` with the
status to answer. It decides which session a page, an autoload script or a
websocket belongs to (creating it if needed), what goes into a new token, and runs
the jobs that keep a process healthy: unused-session clean-up and statistics.
"""

from __future__ import annotations

import asyncio
import hmac
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
from aperture.errors import RequestRefused, SessionError, TokenError
from aperture.protocol import MessageIds
from aperture.security import tokens
from aperture.sessions.context import RequestData
from aperture.sessions.registry import SessionRegistry
from aperture.sessions.session import Session

log = logging.getLogger("aperture.server")

OWNER = "__ap_owner"
OWNER_SIG = "__ap_owner_sig"


@dataclass
class IncomingRequest:
    """What the core needs from an HTTP request (or a websocket upgrade)."""

    arguments: dict[str, list[bytes]] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)
    source: Any = None

    def argument(self, name: str) -> str | None:
        values = self.arguments.get(name)
        return values[-1].decode("utf-8", "replace") if values else None

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None


def _filtered(values: Mapping[str, str], include: Any, exclude: Any) -> dict[str, str]:
    if include is not None:
        return {k: v for k, v in values.items() if k in include}
    if exclude is not None:
        return {k: v for k, v in values.items() if k not in exclude}
    return dict(values)


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
            )
            for route, app in applications.items()
        }
        self._jobs: list[asyncio.Task[None]] = []
        self._started = False
        self.draining = False
        self.owner_address: str | None = None  # where sibling processes reach this one

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        for registry in self.apps.values():
            for pending in registry.runner.server_loaded(registry.server_context):
                try:
                    await pending
                except Exception:
                    log.exception("Error in on_server_loaded of app %s", registry.url)
        cfg = self.config
        self._every(cfg.check_unused_sessions, self._discard_unused)
        self._every(cfg.stats_log_frequency, self._log_stats)
        if cfg.mem_log_frequency > 0:
            self._every(cfg.mem_log_frequency, self._log_memory)

    def busy_sessions(self) -> int:
        """Sessions in the middle of a locked operation (a message or callback in flight)."""
        return sum(1 for r in self.apps.values() for s in r.live_sessions() if s.busy)

    async def stop(self, destroy_sessions: bool = True) -> None:
        for job in self._jobs:
            job.cancel()
        self._jobs.clear()
        if destroy_sessions:
            for registry in self.apps.values():
                await registry.destroy_all()
        for registry in self.apps.values():
            await registry.runner.server_unloaded(registry.server_context)
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)

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
        """Headers and cookies of a live request that apps may see (--include/--exclude-*)."""
        cfg = self.config
        cookies = _filtered(request.cookies, cfg.include_cookies, cfg.exclude_cookies)
        headers = _filtered(request.headers, cfg.include_headers, cfg.exclude_headers)
        if "Cookie" in headers and "Cookie" not in (cfg.include_headers or ()):
            del headers["Cookie"]  # rebuilt from the kept cookies for the app
        return headers, cookies

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
        extra.update(self._owner_hint(session_id))
        return tokens.generate_token(
            session_id,
            secret=cfg.secret_key,
            signed=cfg.sign_sessions,
            expiration=cfg.session_token_expiration,
            extra=extra,
        )

    @property
    def _cluster_key(self) -> bytes | None:
        return self.config.secret_key or self.config.cluster_key

    def _owner_hint(self, session_id: str) -> dict[str, str]:
        """Token fields naming this process as the one that built the session."""
        if self.owner_address is None:
            return {}
        hint = {OWNER: self.owner_address}
        if self._cluster_key is not None:
            hint[OWNER_SIG] = tokens.sign_text(self._cluster_key, f"{session_id}|{self.owner_address}")
        return hint

    def owner_of(self, session_id: str, payload: Mapping[str, Any]) -> str | None:
        """The sibling process that built this session, if the token names one we may trust.

        A hint signed with the shared key (BOKEH_SECRET_KEY, or the key `--num-procs` workers
        share) is trusted; an unsigned one only when it points at a loopback address.
        """
        owner = payload.get(OWNER)
        if not isinstance(owner, str) or owner == self.owner_address or self.owner_address is None:
            return None
        signature = payload.get(OWNER_SIG)
        if self._cluster_key is not None and isinstance(signature, str):
            expected = tokens.sign_text(self._cluster_key, f"{session_id}|{owner}")
            return owner if hmac.compare_digest(expected, signature) else None
        host = owner.rsplit(":", 1)[0].strip("[]")
        return owner if host in ("127.0.0.1", "localhost", "::1") else None

    def _context(
        self, payload: Mapping[str, Any], request: IncomingRequest, *, trust_payload: bool
    ) -> tuple[RequestData, dict[str, Any]]:
        """What `session_context.request` and `.token_payload` show for a new session.

        Headers and cookies come from the live request unless the token carries them and is
        trusted (signed with our key: minted by a key holder). Arguments come from the token
        when it has them (the page's query), else from the live request.
        """
        headers, cookies = self._visible(request)
        if trust_payload and ("headers" in payload or "cookies" in payload):
            headers = dict(payload.get("headers", {}))
            cookies = dict(payload.get("cookies", {}))
        arguments = payload.get("arguments", request.arguments)
        data = RequestData(arguments=arguments, cookies=cookies, headers=headers, source=request.source)
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
        if self.draining:
            raise RequestRefused(503, "Server is shutting down")
        session_id, token = self._requested_id(request)
        if token is not None:
            try:
                session_id = tokens.get_session_id(token)
            except TokenError as exc:
                raise RequestRefused(400, f"Invalid token: {exc.reason}") from None
        elif session_id is None:
            if not cfg.generate_session_ids:
                raise RequestRefused(403, "No bokeh-session-id provided")
            session_id = tokens.generate_session_id(cfg.secret_key, cfg.sign_sessions)
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
        session = await registry.get_or_create(session_id, request=data, token=token, payload=visible)
        return session, token

    # -- sessions for websockets ---------------------------------------------------

    def verify_token(self, token: str) -> tokens.VerifiedToken:
        """Check a websocket token. An expired one is still accepted within the reconnect window,
        so that a page left open can reconnect (its signature must be valid when signing)."""
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
            log.info("Accepted an expired token to reconnect session %r", verified.session_id[:12])
            return verified

    async def session_for_websocket(
        self, route: str, verified: tokens.VerifiedToken, token: str, request: IncomingRequest
    ) -> Session:
        registry = self.apps[route]
        if self.draining and registry.get(verified.session_id) is None:
            raise SessionError("server is shutting down")
        data, visible = self._context(verified.payload, request, trust_payload=self.config.sign_sessions)
        return await registry.get_or_create(verified.session_id, request=data, token=token, payload=visible)

"""The Redis side of the session store: keys, atomic scripts, timeouts and availability.

Layout (all keys under `aperture:`; session keys are hashed, so no client-chosen text names a key):

* `aperture:s:<sha256(route, session id)>` - a hash per session: `owner` (the process that runs it:
  `HOST:PORT|N` as in owner hints, `""` when released), `app`, `fp` (the build's fingerprint),
  `next` (the model id counter), `resumable`, `born`, and the state fields of
  `store.snapshot` (`doc`, `m:<model id>`). It expires `ttl` after the owner last touched it;
  the owner deletes it when the session ends.
* `aperture:peer:<identity>` - a process's heartbeat, expiring a few seconds after it stops.

Every write to a session checks, in the same Lua script, that the writer still owns it, so a
process that lost a session to another can never overwrite the new owner's state. Every call has
a deadline (`timeout`); after a failure the store counts as down - calls fail at once with
`StoreUnavailable` instead of waiting - until a background probe reaches Redis again. Outages are
logged once per `log_interval`, and the return is logged too.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote_plus, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger("aperture.store")

T = TypeVar("T")
PREFIX = "aperture:"

# KEYS[1] session; ARGV: owner, ttl ms, number of field/value pairs, pairs..., fields to delete...
_WRITE = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
local n = tonumber(ARGV[3])
for i = 4, 3 + 2 * n, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
for i = 4 + 2 * n, #ARGV do redis.call('HDEL', KEYS[1], ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
# KEYS[1] session; ARGV: owner, ttl ms, may replace ("1": the caller claimed it), pairs...
_REGISTER = """
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= '' and owner ~= ARGV[1] and ARGV[3] ~= '1' then return owner end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'owner', ARGV[1])
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
# KEYS[1] session; ARGV: expected owner, new owner, ttl ms -> 1, or the actual owner
# (a released session, owner "", is free for anyone: its owner may have released it meanwhile)
_CLAIM = """
local owner = redis.call('HGET', KEYS[1], 'owner')
if not owner then return 0 end
if owner ~= ARGV[1] and owner ~= '' then return owner end
redis.call('HSET', KEYS[1], 'owner', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""
# KEYS[1] session; ARGV: owner -> deletes the session if the caller owns it
_FORGET = """
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# KEYS[1] session; ARGV: owner, ttl ms -> marks the session free for any process to take over
_RELEASE = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'owner', '')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""


class StoreUnavailable(Exception):
    """Redis cannot be reached now (or answered too slowly)."""


def session_key(route: str, session_id: str) -> str:
    digest = hashlib.sha256(f"{route}\0{session_id}".encode("utf-8", "surrogatepass")).hexdigest()
    return f"{PREFIX}s:{digest[:40]}"


def peer_key(identity: str) -> str:
    return f"{PREFIX}peer:{identity}"


def redacted(url: str) -> str:
    """The URL without its password (in the user-info, or a `password=` query argument), for logs."""
    parts = urlsplit(url)
    netloc, query = parts.netloc, parts.query
    if parts.password is not None:
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    if query:
        query = "&".join(
            f"{item.partition('=')[0]}=***"
            if unquote_plus(item.partition("=")[0]).lower() == "password"
            else item
            for item in query.split("&")
        )
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


@dataclass
class SessionRecord:
    """What the store knows about a session, without its document state."""

    owner: str
    app: str
    fingerprint: str
    next_number: int
    resumable: bool


class RedisStore:
    """One process's connection to the store."""

    def __init__(self, url: str, *, timeout: float = 0.5, log_interval: float = 10.0) -> None:
        self.url = url
        self.timeout = timeout
        self.log_interval = log_interval
        self._client: aioredis.Redis = aioredis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry_on_timeout=False
        )
        self._scripts = {
            name: self._client.register_script(text)
            for name, text in (
                ("write", _WRITE),
                ("register", _REGISTER),
                ("claim", _CLAIM),
                ("forget", _FORGET),
                ("release", _RELEASE),
            )
        }
        self.available = True
        self._down_since: float | None = None
        self._last_logged = 0.0
        self._probe: asyncio.Task[None] | None = None
        self.on_return: Callable[[], None] | None = None  # called when Redis is reachable again
        self.on_failure: Callable[[], None] | None = None  # each failed call or probe (metrics)

    # -- availability -------------------------------------------------------------

    async def _call(self, what: str, operation: Callable[[], Awaitable[T]]) -> T:
        if not self.available:
            raise StoreUnavailable(f"session store down since {self._down_for():.0f} s")
        try:
            return await asyncio.wait_for(operation(), self.timeout)
        except (RedisError, OSError, TimeoutError) as exc:
            self._went_down(what, exc)
            if self.on_failure is not None:
                self.on_failure()
            raise StoreUnavailable(str(exc) or type(exc).__name__) from None

    def _down_for(self) -> float:
        return 0.0 if self._down_since is None else time.monotonic() - self._down_since

    def _went_down(self, what: str, exc: BaseException) -> None:
        now = time.monotonic()
        if self.available:
            self.available = False
            self._down_since = now
        if now - self._last_logged >= self.log_interval:
            self._last_logged = now
            log.error(
                "Session store %s unreachable (%s: %s) for %.0f s; sessions keep working on their own "
                "instance, without failover, until it returns",
                redacted(self.url),
                what,
                str(exc) or type(exc).__name__,
                self._down_for(),
            )
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._wait_for_return())

    async def _wait_for_return(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.log_interval))
            try:
                await asyncio.wait_for(self._client.ping(), self.timeout)
            except (RedisError, OSError, TimeoutError) as exc:
                if self.on_failure is not None:  # so an outage keeps counting, once per probe
                    self.on_failure()
                if time.monotonic() - self._last_logged >= self.log_interval:
                    self._last_logged = time.monotonic()
                    log.error(
                        "Session store %s still unreachable after %.0f s: %s",
                        redacted(self.url),
                        self._down_for(),
                        str(exc) or type(exc).__name__,
                    )
                continue
            log.warning(
                "Session store %s is reachable again after %.1f s", redacted(self.url), self._down_for()
            )
            self.available = True
            self._down_since = None
            self._last_logged = 0.0
            if self.on_return is not None:
                self.on_return()
            return

    async def ping(self) -> None:
        await self._call("ping", self._client.ping)

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
        try:
            await asyncio.wait_for(self._client.aclose(), self.timeout)
        except (RedisError, OSError, TimeoutError):
            pass

    # -- peers ----------------------------------------------------------------------

    async def beat(self, identity: str, ttl: float) -> None:
        await self._call("heartbeat", lambda: self._client.set(peer_key(identity), "1", px=int(ttl * 1000)))

    async def stop_beating(self, identity: str) -> None:
        await self._call("heartbeat", lambda: self._client.delete(peer_key(identity)))

    async def alive(self, identity: str) -> bool:
        return bool(await self._call("peer lookup", lambda: self._client.exists(peer_key(identity))))

    # -- sessions ---------------------------------------------------------------------

    async def record(self, route: str, session_id: str) -> SessionRecord | None:
        key = session_key(route, session_id)
        values = await self._call(
            "session lookup", lambda: self._client.hmget(key, ["owner", "app", "fp", "next", "resumable"])
        )
        owner, app, fingerprint, number, resumable = (None if v is None else _text(v) for v in values)
        if owner is None or app != route:
            return None
        return SessionRecord(
            owner=owner,
            app=app,
            fingerprint=fingerprint or "",
            next_number=int(number or 0),
            resumable=resumable == "1",
        )

    async def state_fields(self, route: str, session_id: str) -> dict[str, bytes]:
        key = session_key(route, session_id)
        raw: Any = await self._call("session read", lambda: self._client.hgetall(key))
        return {_text(name): value for name, value in raw.items()}

    async def register(
        self, route: str, session_id: str, owner: str, fields: Mapping[str, str], *, ttl: float, replace: bool
    ) -> str | None:
        """Record a session built here; returns None, or the other owner that already has it."""
        args: list[str] = [owner, str(int(ttl * 1000)), "1" if replace else "0"]
        for name, value in fields.items():
            args.extend((name, value))
        result = await self._call(
            "session registration",
            lambda: self._scripts["register"](keys=[session_key(route, session_id)], args=args),
        )
        return None if result == 1 else _text(result)

    async def claim(
        self, route: str, session_id: str, expected: str, owner: str, *, ttl: float
    ) -> str | None:
        """Take a session over from `expected`; returns None on success, else who owns it ("" if gone)."""
        result = await self._call(
            "session claim",
            lambda: self._scripts["claim"](
                keys=[session_key(route, session_id)], args=[expected, owner, str(int(ttl * 1000))]
            ),
        )
        if result == 1:
            return None
        return "" if result == 0 else _text(result)

    async def write_many(
        self, owner: str, writes: Sequence[tuple[str, Mapping[str, bytes], Sequence[str]]], *, ttl: float
    ) -> list[bool]:
        """Apply several sessions' deltas in one round trip; False for a session no longer ours."""
        if not writes:
            return []

        async def run() -> list[Any]:
            pipe = self._client.pipeline(transaction=False)
            for key, fields, removed in writes:
                args: list[Any] = [owner, str(int(ttl * 1000)), str(len(fields))]
                for name, value in fields.items():
                    args.extend((name, value))
                args.extend(removed)
                await self._scripts["write"](keys=[key], args=args, client=pipe)
            result: list[Any] = await pipe.execute()
            return result

        return [r == 1 for r in await self._call("session write", run)]

    async def forget(self, route: str, session_id: str, owner: str) -> None:
        key = session_key(route, session_id)
        await self._call("session delete", lambda: self._scripts["forget"](keys=[key], args=[owner]))

    async def release_many(self, keys: Sequence[str], owner: str, *, ttl: float) -> None:
        if not keys:
            return

        async def run() -> None:
            pipe = self._client.pipeline(transaction=False)
            for key in keys:
                await self._scripts["release"](keys=[key], args=[owner, str(int(ttl * 1000))], client=pipe)
            await pipe.execute()

        await self._call("session release", run)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

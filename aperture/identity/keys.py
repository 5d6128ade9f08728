"""The provider's signing keys (its JWKS), with key rotation.

Providers rotate keys by publishing a new one (a new `kid`) before they sign with it. A token
naming a `kid` we do not hold makes us fetch the key set again, at most once every
`min_refetch` seconds (the first fetch does not count), and concurrent requests share that one fetch; so a flood of tokens with
made-up `kid`s costs the provider one request per interval, and a real rotation is picked up at
once. Keys meant for encryption (`"use": "enc"`) and keys joserfc cannot read are skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import Key, import_key

from aperture.identity.transport import ProviderError, Transport

log = logging.getLogger("aperture.identity")

MIN_REFETCH = 60.0  # seconds between two fetches caused by an unknown kid


class UnknownKey(Exception):
    """No key of the provider matches the token's `kid`, even after fetching the keys again."""


class ProviderKeys:
    """Signing keys fetched from the `jwks_uri` the discovery document gives."""

    def __init__(
        self,
        jwks_uri: Callable[[], Awaitable[str]],
        transport: Transport,
        *,
        min_refetch: float = MIN_REFETCH,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._jwks_uri = jwks_uri
        self._transport = transport
        self._min_refetch = min_refetch
        self._clock = clock
        self._keys: list[Key] | None = None
        self._refetched_at: float | None = None  # the last fetch an unknown kid caused
        self._pending: asyncio.Future[list[Key]] | None = None
        self.fetches = 0  # how many times the key set was fetched (reported in logs and tests)

    async def key_for(self, kid: str | None) -> Key:
        """The key the token's header names; fetches again (within limits) for an unknown kid."""
        if self._keys is None:
            await self._refetch()
        found = _pick(self._keys or [], kid)
        if found is None and self._pending is not None:  # a fetch under way may bring it
            await self._refetch()
            found = _pick(self._keys or [], kid)
        if found is not None:
            return found
        if self._refetched_at is not None and self._clock() - self._refetched_at < self._min_refetch:
            raise UnknownKey(
                f"no signing key with kid {kid!r} (keys fetched less than {self._min_refetch:.0f} s ago)"
            )
        self._refetched_at = self._clock()  # also when the fetch fails: a failing provider is not hammered
        await self._refetch()
        found = _pick(self._keys or [], kid)
        if found is None:
            raise UnknownKey(
                f"no signing key with kid {kid!r}, even after fetching the provider's keys again"
            )
        log.info("Fetched the provider's keys again: kid %r is new", kid)
        return found

    async def _refetch(self) -> None:
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._fetch())
        pending = self._pending
        try:
            self._keys = await asyncio.shield(pending)
        finally:
            if pending.done() and self._pending is pending:
                self._pending = None

    async def _fetch(self) -> list[Key]:
        url = await self._jwks_uri()
        self.fetches += 1
        answer = await self._transport.request("GET", url)
        if answer.status != 200:
            raise ProviderError(f"key set {url} answered {answer.status}")
        entries = answer.json_object(f"key set {url}").get("keys")
        if not isinstance(entries, list):
            raise ProviderError(f"key set {url} has no 'keys' list")
        return [key for key in (_import(entry) for entry in entries) if key is not None]


def _import(entry: Any) -> Key | None:
    if not isinstance(entry, dict) or entry.get("use") == "enc" or entry.get("kty") == "oct":
        return None
    try:
        return import_key(entry)
    except (JoseError, ValueError, TypeError):
        log.debug("Skipped a key of the provider's key set that joserfc cannot read")
        return None


def _pick(keys: list[Key], kid: str | None) -> Key | None:
    if kid is None:
        return keys[0] if len(keys) == 1 else None  # without a kid, only an unambiguous key set will do
    for key in keys:
        if key.kid == kid:
            return key
    return None

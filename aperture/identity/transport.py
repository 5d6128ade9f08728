"""How the identity package reaches the provider: one small HTTP interface the web layer implements.

Keeping the HTTP client outside the package keeps it free of any web framework and lets tests hand
it a transport of their own. Every failure to reach the provider, or an answer that is not what
the protocol promises, is a `ProviderError` whose text says which endpoint failed and how.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

MAX_ANSWER_BYTES = 1 << 20  # a discovery document, key set or token response is far smaller


class ProviderError(Exception):
    """The provider could not be reached or answered something unusable."""


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status and body."""

    status: int
    body: bytes

    def json_object(self, what: str) -> dict[str, Any]:
        """The body as a JSON object, or a ProviderError naming `what` was asked for."""
        try:
            value = json.loads(self.body)
        except ValueError:
            raise ProviderError(f"{what}: the answer is not JSON (status {self.status})") from None
        if not isinstance(value, dict):
            raise ProviderError(f"{what}: the answer is not a JSON object (status {self.status})")
        return value


class Transport(Protocol):
    """Sends one HTTP request to the provider; raises ProviderError when it cannot be reached."""

    async def request(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None, body: bytes | None = None
    ) -> Answer: ...

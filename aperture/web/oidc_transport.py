"""The identity package's `Transport`, on Tornado's HTTP client.

Calls to the provider have a connect and a total timeout, never follow redirects (a discovery
document or token endpoint that redirects is misconfigured), and refuse answers over 1 MiB.
TLS is verified with the system's trust store; `SSL_CERT_FILE` names another bundle (a private CA).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from aperture.identity.transport import MAX_ANSWER_BYTES, Answer, ProviderError

CONNECT_TIMEOUT = 5.0
REQUEST_TIMEOUT = 10.0


class TornadoTransport:
    """HTTP to the provider; one client per transport, made on first use (on the serving loop)."""

    def __init__(self) -> None:
        self._client: AsyncHTTPClient | None = None

    async def request(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None, body: bytes | None = None
    ) -> Answer:
        if self._client is None:
            self._client = AsyncHTTPClient(force_instance=True, max_body_size=MAX_ANSWER_BYTES)
        where = urlsplit(url).netloc or url[:60]
        request = HTTPRequest(
            url,
            method=method,
            headers=dict(headers or {}),
            body=body,
            connect_timeout=CONNECT_TIMEOUT,
            request_timeout=REQUEST_TIMEOUT,
            follow_redirects=False,
            user_agent="Aperture",
        )
        try:
            response = await self._client.fetch(request, raise_error=False)
        except (OSError, HTTPClientError, ValueError) as exc:
            raise ProviderError(f"{where}: {exc}") from None
        if response.code == 599:
            raise ProviderError(f"{where}: {response.error}")
        return Answer(response.code, response.body or b"")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

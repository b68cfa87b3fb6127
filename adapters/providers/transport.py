"""The provider clients' shared HTTP plumbing: a POST or a lookup GET, and failures mapped onto the port's errors."""

from __future__ import annotations

import json
from typing import Any

import httpx

from core.providers import ProviderUnavailable

#: Answers after which the provider certainly did nothing, worth repeating later: bad gateway, unavailable,
#: gateway timeout (the provider behind the gateway answered no one), rate limited, request timeout, too early.
NOT_PROCESSED_STATUSES = frozenset({502, 503, 504, 429, 408, 425})
#: 4xx answers after which the request may have been processed, worth repeating: a concurrent request with the
#: same idempotency key is still running (Stripe answers 409). So is every 5xx not in `NOT_PROCESSED_STATUSES`.
AMBIGUOUS_STATUSES = frozenset({409})
#: The provider refused our API key (rotated, revoked): transient for us, never the payment's fault.
AUTH_STATUSES = frozenset({401, 403})


class ProviderHttp:
    """Talks to one provider's base URL with its bearer key; owns the client it made.

    Every failure worth repeating raises `ProviderUnavailable` with `ambiguous` saying
    whether the provider may have processed the request: False when it certainly did
    not (the connection was never made, 502/503/504, 429, 408, 425, our key refused
    with 401/403), True otherwise (a timeout or a connection lost after sending, 409,
    500 and any other 5xx, a body that is not a JSON object).
    """

    def __init__(
        self, provider: str, base_url: str, api_key: str, *, key_header: str,
        client: httpx.AsyncClient | None, timeout: float,
    ) -> None:
        url = httpx.URL(base_url)  # fail at start-up on a malformed URL, not on the first payment
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"{provider} base URL must be an absolute http(s) URL, got {base_url!r}")
        self.provider = provider
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        self._key_header = key_header
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient()
        self._timeout = timeout

    async def post(
        self, path: str, idempotency_key: str, *, data: dict[str, str] | None = None, body: Any = None,
    ) -> tuple[int, dict[str, Any]]:
        """Status and JSON object of a final answer (2xx, or a 4xx the caller reads as a refusal).

        Raises `ProviderUnavailable` for anything worth repeating with the same idempotency key.
        """
        headers = {**self._headers, self._key_header: idempotency_key}
        response = await self._send("POST", path, headers=headers, data=data, json=body)
        return response.status_code, self._parse(response)

    async def get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        """The JSON object of a 2xx answer to a lookup (no idempotency key: it changes nothing).

        Raises `ProviderUnavailable` for anything else: a lookup that was not answered cannot tell.
        """
        response = await self._send("GET", path, headers=self._headers, params=params)
        status = response.status_code
        if not 200 <= status < 300:
            raise ProviderUnavailable(f"{self.provider} could not answer the lookup (HTTP {status})", ambiguous=False)
        return self._parse(response)

    async def _send(self, method: str, path: str, **options: Any) -> httpx.Response:
        try:
            response = await self._client.request(method, self._base + path, timeout=self._timeout, **options)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
            # never left this process (PoolTimeout: no connection was free to send it on)
            raise ProviderUnavailable(
                f"{self.provider} is unreachable ({type(error).__name__})", ambiguous=False) from None
        except httpx.TimeoutException:
            raise ProviderUnavailable(f"{self.provider} did not answer within {self._timeout:g} s") from None
        except httpx.HTTPError as error:  # the connection broke after (part of) the request went out
            raise ProviderUnavailable(f"{self.provider} is unreachable ({type(error).__name__})") from None
        status = response.status_code
        if status in AUTH_STATUSES:
            raise ProviderUnavailable(f"{self.provider} refused our API key (HTTP {status})", ambiguous=False)
        if status in NOT_PROCESSED_STATUSES:
            raise ProviderUnavailable(f"{self.provider} is unavailable (HTTP {status})", ambiguous=False)
        if status >= 500 or status in AMBIGUOUS_STATUSES:
            raise ProviderUnavailable(f"{self.provider} is unavailable (HTTP {status})")
        return response

    def _parse(self, response: httpx.Response) -> dict[str, Any]:
        try:
            parsed = json.loads(response.content)
        except (ValueError, RecursionError):
            parsed = None
        if not isinstance(parsed, dict):
            raise ProviderUnavailable(f"{self.provider} sent an unparseable response (HTTP {response.status_code})")
        return parsed

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it (a client passed in belongs to the caller)."""
        if self._owns_client:
            await self._client.aclose()



class ProviderClient:
    """What the Stripe- and PayPal-like clients share: a `ProviderHttp` to their base URL, sending `key_header`.

    A subclass names its provider (`name`) and the header its idempotency key travels in (`key_header`).
    """

    name: str
    key_header: str

    def __init__(
        self, base_url: str, api_key: str, *, client: httpx.AsyncClient | None = None, timeout: float = 10.0,
    ) -> None:
        self._http = ProviderHttp(
            self.name, base_url, api_key, key_header=self.key_header, client=client, timeout=timeout)

    async def aclose(self) -> None:
        """Close the HTTP client unless it was passed in."""
        await self._http.aclose()

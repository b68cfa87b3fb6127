"""The provider clients' shared HTTP plumbing: one POST, and transport failures mapped onto the port's errors."""

from __future__ import annotations

import json
from typing import Any

import httpx

from core.providers import ProviderUnavailable

#: 4xx answers that mean "try again later" rather than "never": request timeout, a concurrent request
#: with the same idempotency key still running (Stripe answers 409), too early, rate limited.
TRANSIENT_STATUSES = frozenset({408, 409, 425, 429})


class ProviderHttp:
    """POSTs to one provider's base URL with its bearer key and an idempotency header; owns the client it made."""

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
        """Status and JSON object of a final answer; ProviderUnavailable for anything worth repeating.

        Timeouts, connection errors, 5xx, `TRANSIENT_STATUSES` and bodies that are not a
        JSON object all raise `ProviderUnavailable`: the outcome is unknown, and repeating
        the call with the same idempotency key is what settles it.
        """
        headers = {**self._headers, self._key_header: idempotency_key}
        try:
            response = await self._client.post(
                self._base + path, data=data, json=body, headers=headers, timeout=self._timeout)
        except httpx.TimeoutException:
            raise ProviderUnavailable(f"{self.provider} did not answer within {self._timeout:g} s") from None
        except httpx.HTTPError as error:
            raise ProviderUnavailable(f"{self.provider} is unreachable ({type(error).__name__})") from None
        status = response.status_code
        if status >= 500 or status in TRANSIENT_STATUSES:
            raise ProviderUnavailable(f"{self.provider} is unavailable (HTTP {status})")
        try:
            parsed = json.loads(response.content)
        except (ValueError, RecursionError):
            parsed = None
        if not isinstance(parsed, dict):
            raise ProviderUnavailable(f"{self.provider} sent an unparseable response (HTTP {status})")
        return status, parsed

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it (a client passed in belongs to the caller)."""
        if self._owns_client:
            await self._client.aclose()


def text(value: object) -> str | None:
    """`value` if it is a non-empty string, else None (for picking fields out of untrusted JSON)."""
    return value if isinstance(value, str) and value else None

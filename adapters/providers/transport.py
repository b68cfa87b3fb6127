"""The provider clients' shared HTTP plumbing: a POST or a lookup GET, and failures mapped onto the port's errors.

The bytes travel through an `HttpTransport`: `AiohttpTransport` in production, a recording fake in the unit tests.
aiohttp rather than httpx (which the clients used until 7 December 2026): a provider call cost the worker about
1.2-1.45 ms of CPU with httpx and 0.25-0.29 ms with aiohttp (the same POST to the mock server, 3,000 calls, 8 at a
time, on uvloop; docs/benchmarks.md, "Provider calls on aiohttp"), and every external payment makes one.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

import aiohttp
import httpx
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from core.providers import ProviderUnavailable

#: Answers after which the provider certainly did nothing, worth repeating later: bad gateway, unavailable,
#: gateway timeout (the provider behind the gateway answered no one), rate limited, request timeout, too early.
NOT_PROCESSED_STATUSES = frozenset({502, 503, 504, 429, 408, 425})
#: 4xx answers after which the request may have been processed, worth repeating: a concurrent request with the
#: same idempotency key is still running (Stripe answers 409). So is every 5xx not in `NOT_PROCESSED_STATUSES`.
AMBIGUOUS_STATUSES = frozenset({409})
#: The provider refused our API key (rotated, revoked): transient for us, never the payment's fault.
AUTH_STATUSES = frozenset({401, 403})


class SendFailed(Exception):
    """A request got no whole answer: `what` went wrong, whether any of the request may have reached the provider
    (`sent`), and whether it ran out of time (`timed_out`)."""

    def __init__(self, what: str, *, sent: bool, timed_out: bool = False) -> None:
        super().__init__(what)
        self.what, self.sent, self.timed_out = what, sent, timed_out


class HttpTransport(Protocol):
    """Sends one request (the URL already encoded, query included) and returns the answer's status and body, all of
    it within `within` seconds; raises `SendFailed` otherwise."""

    async def send(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None,
                   within: float) -> tuple[int, bytes]: ...

    async def aclose(self) -> None: ...


POOL = 100  # connections per process, to every provider together (httpx's default too)
KEEP_ALIVE = 30.0  # seconds an idle connection is kept


class _Phase:
    """How far one request got: whether it had a connection (after which any of it may have reached the provider)."""

    __slots__ = ("connected",)

    def __init__(self) -> None:
        self.connected = False


async def _connected(_: aiohttp.ClientSession, context: Any, __: object) -> None:
    context.trace_request_ctx.connected = True


#: Marks a request's `_Phase` once it holds a connection, new or reused: a deadline passing before then (waiting for
#: the pool, or connecting) certainly sent nothing. aiohttp's own ConnectionTimeoutError covers only its `connect`
#: timeout, not the total deadline passing while queued for the pool.
_PHASES = aiohttp.TraceConfig()
_PHASES.on_connection_create_end.append(_connected)
_PHASES.on_connection_reuseconn.append(_connected)


class AiohttpTransport:
    """Sends a provider request and reads its whole answer within `within` seconds, connecting included.

    Redirects are not followed (a provider that redirects has answered). Proxies come from the environment
    (`HTTPS_PROXY`, `NO_PROXY`, read at the first call to each provider), as they did with httpx; TLS verifies
    against certifi's roots unless `tls` says otherwise. The pool is bound to the event loop that opens it: the
    first call's.
    """

    def __init__(self, *, tls: ssl.SSLContext | None = None, pool: int = POOL) -> None:
        self._tls, self._pool = tls, pool
        self._session: aiohttp.ClientSession | None = None
        self.closed = False
        #: The proxy for each provider origin, from the environment, read once: aiohttp's `trust_env` reads it
        #: again on every request (1.5 % of a worker's CPU under the payments bench).
        self._proxies: dict[tuple[str, str | None, int | None], tuple[URL | None, aiohttp.BasicAuth | None]] = {}

    def _client(self) -> aiohttp.ClientSession:
        if self.closed:  # as httpx did: a request after `aclose` is a bug, not a provider failure
            raise RuntimeError("the provider transport has been closed")
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._pool, keepalive_timeout=KEEP_ALIVE,
                                             ssl=self._tls or httpx.create_ssl_context())
            self._session = aiohttp.ClientSession(connector=connector, trace_configs=[_PHASES],
                                                  timeout=aiohttp.ClientTimeout(total=None))
        return self._session

    async def send(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None,
                   within: float) -> tuple[int, bytes]:
        """The answer's status and body. Raises `SendFailed` when there is no whole answer in time."""
        phase, target = _Phase(), URL(url, encoded=True)
        proxy, proxy_auth = self._proxy(target)
        try:
            async with self._client().request(
                method, target, headers=dict(headers), data=body, allow_redirects=False, proxy=proxy,
                proxy_auth=proxy_auth, timeout=aiohttp.ClientTimeout(total=within), trace_request_ctx=phase,
            ) as answer:
                return answer.status, await answer.read()
        except aiohttp.ClientConnectorError as error:  # refused, unresolvable, TLS handshake failed
            raise SendFailed(f"ConnectError: {error.os_error or error}", sent=False) from None
        except TimeoutError:  # aiohttp's ConnectionTimeoutError too
            if not phase.connected:  # no connection in time, a free one from the pool or a new one: nothing went out
                raise SendFailed("ConnectTimeout", sent=False) from None
            raise SendFailed("timeout", sent=True, timed_out=True) from None
        except (aiohttp.ClientError, asyncio.IncompleteReadError) as error:  # broke after the request went out
            raise SendFailed(type(error).__name__, sent=True) from None

    def _proxy(self, target: URL) -> tuple[URL | None, aiohttp.BasicAuth | None]:
        origin = (target.scheme, target.host, target.port)
        if (known := self._proxies.get(origin)) is None:
            try:
                known = self._proxies[origin] = get_env_proxy_for_url(target)
            except LookupError:  # none set, or NO_PROXY names the host
                known = self._proxies[origin] = (None, None)
        return known

    async def aclose(self) -> None:
        self.closed = True
        if self._session is not None:
            await self._session.close()


class ProviderHttp:
    """Talks to one provider's base URL with its bearer key, through an `HttpTransport`.

    Every failure worth repeating raises `ProviderUnavailable` with `ambiguous` saying
    whether the provider may have processed the request: False when it certainly did
    not (the connection was never made, 502/503/504, 429, 408, 425, our key refused
    with 401/403), True otherwise (a timeout or a connection lost after sending, 409,
    500 and any other 5xx, a body that is not a JSON object).
    """

    def __init__(
        self, provider: str, base_url: str, api_key: str, *, key_header: str,
        transport: HttpTransport | None, timeout: float,
    ) -> None:
        _check_base_url(provider, base_url)  # fail at start-up on a malformed URL, not on the first payment
        self.provider = provider
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        self._key_header = key_header
        self._owns_transport = transport is None
        self._transport: HttpTransport = transport if transport is not None else AiohttpTransport()
        self._timeout = timeout

    async def post(
        self, path: str, idempotency_key: str, *, data: dict[str, str] | None = None, body: Any = None,
    ) -> tuple[int, dict[str, Any]]:
        """Status and JSON object of a final answer (2xx, or a 4xx the caller reads as a refusal).

        Raises `ProviderUnavailable` for anything worth repeating with the same idempotency key.
        """
        headers = {**self._headers, self._key_header: idempotency_key}
        if data is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            content = urlencode(data).encode()
        else:
            headers["Content-Type"] = "application/json"
            content = json.dumps(body, separators=(",", ":")).encode()
        status, answer = await self._send("POST", self._base + path, headers, content)
        return status, self._parse(status, answer)

    async def get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        """The JSON object of a 2xx answer to a lookup (no idempotency key: it changes nothing).

        Raises `ProviderUnavailable` for anything else: a lookup that was not answered cannot tell.
        """
        status, answer = await self._send("GET", f"{self._base}{path}?{urlencode(params)}", self._headers, None)
        if not 200 <= status < 300:
            raise ProviderUnavailable(f"{self.provider} could not answer the lookup (HTTP {status})", ambiguous=False)
        return self._parse(status, answer)

    async def _send(self, method: str, url: str, headers: Mapping[str, str],
                    body: bytes | None) -> tuple[int, bytes]:
        try:
            status, answer = await self._transport.send(method, url, headers, body, self._timeout)
        except SendFailed as failed:
            if failed.timed_out:
                raise ProviderUnavailable(f"{self.provider} did not answer within {self._timeout:g} s",
                                          ambiguous=failed.sent) from None
            # not sent: it never left this process (no connection, or none free in time)
            raise ProviderUnavailable(f"{self.provider} is unreachable ({failed.what})",
                                      ambiguous=failed.sent) from None
        if status in AUTH_STATUSES:
            raise ProviderUnavailable(f"{self.provider} refused our API key (HTTP {status})", ambiguous=False)
        if status in NOT_PROCESSED_STATUSES:
            raise ProviderUnavailable(f"{self.provider} is unavailable (HTTP {status})", ambiguous=False)
        if status >= 500 or status in AMBIGUOUS_STATUSES:
            raise ProviderUnavailable(f"{self.provider} is unavailable (HTTP {status})")
        return status, answer

    def _parse(self, status: int, answer: bytes) -> dict[str, Any]:
        try:
            parsed = json.loads(answer)
        except (ValueError, RecursionError):
            parsed = None
        if not isinstance(parsed, dict):
            raise ProviderUnavailable(f"{self.provider} sent an unparseable response (HTTP {status})")
        return parsed

    async def aclose(self) -> None:
        """Close the transport if this object created it (a transport passed in belongs to the caller)."""
        if self._owns_transport:
            await self._transport.aclose()


def _check_base_url(provider: str, base_url: str) -> None:
    try:
        parts = urlsplit(base_url)
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError as error:
        raise ValueError(f"{provider} base URL is malformed ({error}): {base_url!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{provider} base URL must be an absolute http(s) URL, got {base_url!r}")


class ProviderClient:
    """What the Stripe- and PayPal-like clients share: a `ProviderHttp` to their base URL, sending `key_header`.

    A subclass names its provider (`name`) and the header its idempotency key travels in (`key_header`).
    """

    name: str
    key_header: str

    def __init__(
        self, base_url: str, api_key: str, *, transport: HttpTransport | None = None, timeout: float = 10.0,
    ) -> None:
        self._http = ProviderHttp(
            self.name, base_url, api_key, key_header=self.key_header, transport=transport, timeout=timeout)

    async def aclose(self) -> None:
        """Close the HTTP transport unless it was passed in."""
        await self._http.aclose()

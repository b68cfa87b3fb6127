"""The `WebhookSender` over httpx, with the SSRF guard at connect time, and the system `Resolver`."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable, Mapping
from typing import Any

import httpcore
import httpx

from core.errors import Unavailable
from core.webhook_destinations import refused_addresses
from core.webhooks import SendResult

RESOLVE_TIMEOUT = 2.0
_TEMPORARY = {socket.EAI_AGAIN, socket.EAI_FAIL}
_SNIPPET = 300  # bytes of a failing answer kept in the delivery log
# A success's answer is read to its end, up to this many bytes, so that its connection goes back to the pool:
# httpcore closes a connection whose answer was left unread, and the next POST to that receiver would then
# pay a new TCP (and TLS) handshake.
_KEEP_ALIVE_BODY = 64 * 1024


class SystemResolver:
    """The `Resolver` port: the operating system's resolver (getaddrinfo), bounded in time.

    A name that does not exist resolves to nothing; a resolver that does not answer in time is
    `Unavailable` (the caller may try again), not a verdict on the name.
    """

    async def resolve(self, host: str) -> list[str]:
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(loop.getaddrinfo(host, None, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT)
        except TimeoutError:
            raise Unavailable(f"resolving {host!r} took longer than {RESOLVE_TIMEOUT:g} s; try again") from None
        except socket.gaierror as error:
            if error.errno in _TEMPORARY:  # the resolver failed, not the name
                raise Unavailable(f"resolving {host!r} failed for now ({error.strerror}); try again") from None
            return []
        except (OSError, UnicodeError):
            return []
        return list(dict.fromkeys(str(info[4][0]) for info in infos))


class RefusedDestination(httpcore.ConnectError):
    """The host resolves to an address webhooks may not reach."""


class GuardedBackend(httpcore.AnyIOBackend):
    """Resolves the host itself, refuses it if any address is private, then connects to a checked address.

    The check happens where the connection is made, so a name that resolves to a public address
    when the subscription is saved and to a private one later (DNS rebinding) is still refused.
    TLS still verifies the certificate against the URL's host name.
    """

    def __init__(self, resolver: SystemResolver, *, allow_private: bool) -> None:
        self._resolver, self._allow_private = resolver, allow_private

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self._resolver.resolve(host)
        except Unavailable as slow:
            raise httpcore.ConnectTimeout(slow.detail) from None
        if not addresses:
            raise httpcore.ConnectError(f"{host} does not resolve")
        if not self._allow_private and (refused := refused_addresses(addresses)):
            raise RefusedDestination(f"refused: {host} resolves to a private, loopback or link-local address "
                                     f"({refused[0]})")
        error: Exception | None = None
        for address in addresses:
            try:
                return await super().connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as failed:
                error = failed
        assert error is not None
        raise error


class _GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, backend: GuardedBackend) -> None:
        super().__init__(trust_env=False)  # no proxy from the environment: it would bypass the guard
        # httpx builds its pool without a way to pass a network backend; swap in one that has ours.
        self._pool = httpcore.AsyncConnectionPool(ssl_context=httpx.create_ssl_context(), network_backend=backend,
                                                  max_connections=100, keepalive_expiry=30.0)


class HttpxWebhookSender:
    """The `WebhookSender` port: POST, no redirects followed, 2xx within `timeout` (overall) is success."""

    def __init__(self, *, allow_private: bool, resolver: SystemResolver | None = None) -> None:
        backend = GuardedBackend(resolver or SystemResolver(), allow_private=allow_private)
        self._client = httpx.AsyncClient(transport=_GuardedTransport(backend), follow_redirects=False,
                                         trust_env=False)

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], *, within: float) -> SendResult:
        try:
            return await asyncio.wait_for(self._post(url, body, headers, within), within)
        except (TimeoutError, httpx.TimeoutException):
            return SendResult(error=f"timed out after {within:g} s")
        except RefusedDestination as refused:
            return SendResult(error=str(refused))
        except httpx.HTTPError as failed:
            cause = failed.__cause__ if isinstance(failed.__cause__, RefusedDestination) else failed
            text = str(cause) or type(cause).__name__
            return SendResult(error=text if text.startswith("refused:") else f"{type(failed).__name__}: {text}")

    async def _post(self, url: str, body: bytes, headers: Mapping[str, str], seconds: float) -> SendResult:
        async with self._client.stream("POST", url, content=body, headers=dict(headers), timeout=seconds) as answer:
            ok = 200 <= answer.status_code < 300
            snippet = b""
            async for chunk in answer.aiter_bytes():
                snippet += chunk
                if len(snippet) >= (_KEEP_ALIVE_BODY if ok else _SNIPPET):
                    # A long answer is not read to its end: the connection is then closed, not kept alive.
                    break
            if ok:
                return SendResult(status_code=answer.status_code)
            text = snippet[:_SNIPPET].decode("utf-8", "replace").strip()
            return SendResult(status_code=answer.status_code,
                              error=f"HTTP {answer.status_code}" + (f": {text}" if text else ""))

    async def aclose(self) -> None:
        await self._client.aclose()

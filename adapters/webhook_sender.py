"""The `WebhookSender` over aiohttp, with the SSRF guard at connect time, and the system `Resolver`.

aiohttp rather than httpx (which the provider adapters use): with httpx a delivery cost the worker about 2.5 times
the CPU (headers and body in two socket writes, anyio's task groups, h11's validation; docs/benchmarks.md,
"Webhook deliveries: keep-alive, then aiohttp"), and deliveries are the worker's hottest path.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Mapping
from typing import Any

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from core.errors import Unavailable
from core.webhook_destinations import refused_addresses
from core.webhooks import SendResult

RESOLVE_TIMEOUT = 2.0
_TEMPORARY = {socket.EAI_AGAIN, socket.EAI_FAIL}
_SNIPPET = 300  # bytes of a failing answer kept in the delivery log
# A success's answer is read to its end, up to this many bytes, so that its connection goes back to the pool: a
# connection whose answer was left unread is closed, and the next POST to that receiver would then pay a new TCP
# (and TLS) handshake.
_KEEP_ALIVE_BODY = 64 * 1024
_BODY_WAIT = 1.0  # seconds an answer's body may take after its status and headers
_HEADER_LIMIT = 64 * 1024  # bytes of an answer's status line or of one of its headers
_POOL = 100  # connections per worker process, every receiver together
_KEEP_ALIVE = 30.0  # seconds an idle connection is kept


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


class RefusedDestination(OSError):
    """The host resolves to an address webhooks may not reach."""


class CannotConnect(OSError):
    """The host does not resolve, or its resolver did not answer."""


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver: resolves the host itself and refuses it if any address is private.

    aiohttp asks it for every new connection (its DNS cache is off), so a name that resolves to a public
    address when the subscription is saved and to a private one later (DNS rebinding) is still refused; the
    connection goes to a checked address and TLS still verifies the certificate against the URL's host name.
    An IP address in the URL never reaches a resolver: `HttpWebhookSender` checks it before connecting, and its
    socket factory checks every address about to be connected to, whichever way aiohttp came by it.
    """

    def __init__(self, resolver: SystemResolver, *, allow_private: bool) -> None:
        self._resolver, self._allow_private = resolver, allow_private

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        try:
            addresses = await self._resolver.resolve(host)
        except Unavailable as slow:
            raise CannotConnect(slow.detail) from None
        if not addresses:
            raise CannotConnect(f"{host} does not resolve")
        if not self._allow_private:
            _refuse_private(host, addresses)
        return [{"hostname": host, "host": address, "port": port, "proto": 0, "flags": socket.AI_NUMERICHOST,
                 "family": socket.AF_INET6 if ":" in address else socket.AF_INET} for address in addresses]

    async def close(self) -> None:
        return None


def _refuse_private(host: str, addresses: list[str]) -> None:
    if refused := refused_addresses(addresses):
        raise RefusedDestination(f"refused: {host} resolves to a private, loopback or link-local address "
                                 f"({refused[0]})")


def unusable(url: str) -> str | None:
    """Why the sender could not POST to `url` (its parser is stricter than urllib about some hosts), or None."""
    try:
        parsed = URL(url)
    except (ValueError, TypeError, UnicodeError) as error:
        return str(error) or "it does not parse"
    if not parsed.absolute or not parsed.raw_host:
        return "it has no host"
    raw = parsed.raw_host
    if "%" in raw:
        return f"{raw} has a zone index or an escape in its host"
    if _looks_like_ip(raw) and ":" not in raw and (address := _literal_address(raw)) != raw:
        return f"{raw} is not an IPv4 address in dotted decimal" + (f" ({address} is)" if address else "")
    return None


def _looks_like_ip(host: str) -> bool:
    """aiohttp's own test (`helpers.is_ip_address`): a host it connects to as an address, asking no resolver."""
    return ":" in host or host.replace(".", "").isdigit()


def _literal_address(host: str | None) -> str | None:
    """The address when the host is a plain IP address; an IPv4 one in a legacy numeric form too (`2130706433`,
    `127.1`, `0x7f.0.0.1`: aiohttp refuses to use those, but the verdict is the guard's). None for anything else,
    a zone index (`::1%25`) included."""
    text = (host or "").strip("[]")
    if "%" in text:
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    try:
        return socket.inet_ntoa(socket.inet_aton(text)) if text and ":" not in text else None
    except OSError:
        return None


def _guarded_socket(addr_info: tuple[Any, ...]) -> socket.socket:
    """aiohttp's socket factory when private addresses are refused: the last check, on the very address about to be
    connected to, whichever way aiohttp came by it (a resolver's answer or an IP literal in the URL)."""
    family, kind, proto, _, sockaddr = addr_info
    _check_address(str(sockaddr[0]))
    return socket.socket(family, kind, proto)


def _check_address(host: str) -> None:
    """Refuse an IP address (any form but one with a zone index, which is refused outright) that is private."""
    if (address := _literal_address(host)) is None:  # a zone index, or not an address at all
        raise RefusedDestination(f"refused: {host} is not an address the guard can check")
    _refuse_private(host, [address])


class HttpWebhookSender:
    """The `WebhookSender` port: POST, no redirects followed, 2xx within `timeout` (overall) is success.

    One keep-alive pool per process, opened on the first POST (aiohttp binds it to the running event loop).
    """

    def __init__(self, *, allow_private: bool, resolver: SystemResolver | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        self._allow_private, self._tls = allow_private, tls
        self._resolver = GuardedResolver(resolver or SystemResolver(), allow_private=allow_private)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # TLS verifies against certifi's roots unless told otherwise, as the provider adapters (httpx) do
            connector = aiohttp.TCPConnector(
                limit=_POOL, keepalive_timeout=_KEEP_ALIVE, use_dns_cache=False, resolver=self._resolver,
                ssl=self._tls or httpx.create_ssl_context(),
                socket_factory=None if self._allow_private else _guarded_socket)
            # no proxy from the environment (it would bypass the guard); no Accept-Encoding, so that an error's
            # snippet in the delivery log stays readable; no made-up Content-Type; headers as long as a receiver's
            # (aiohttp's 8 KiB default would turn a 2xx with a long header into a failure)
            self._session = aiohttp.ClientSession(
                connector=connector, trust_env=False, auto_decompress=False,
                skip_auto_headers=("Accept-Encoding", "Content-Type"), timeout=aiohttp.ClientTimeout(total=None),
                max_line_size=_HEADER_LIMIT, max_field_size=_HEADER_LIMIT)
        return self._session

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], *, within: float) -> SendResult:
        try:
            async with asyncio.timeout(within):
                answer = await self._send(url, body, headers)
        except TimeoutError:  # aiohttp's timeouts are asyncio's TimeoutError too
            return SendResult(error=f"timed out after {within:g} s")
        except RefusedDestination as refused:
            return SendResult(error=str(refused))
        except aiohttp.ClientConnectorError as failed:
            cause = failed.os_error
            if isinstance(cause, RefusedDestination):
                return SendResult(error=str(cause))
            return SendResult(error=f"ConnectError: {cause if isinstance(cause, CannotConnect) else failed}")
        except aiohttp.ClientResponseError as failed:  # what came back is not HTTP (its "status" is made up)
            return SendResult(error=f"the answer is not HTTP: {failed.message}"[:1000])
        except (aiohttp.ClientError, ValueError) as failed:  # ValueError: a URL aiohttp cannot use
            return SendResult(error=f"{type(failed).__name__}: {failed}" if str(failed) else type(failed).__name__)
        return await _verdict(answer)

    async def _send(self, url: str, body: bytes, headers: Mapping[str, str]) -> aiohttp.ClientResponse:
        """POST and return once the answer's status and headers are in (its body is left to `_verdict`)."""
        target = URL(url)
        raw = target.raw_host or ""
        if not self._allow_private and _looks_like_ip(raw):  # aiohttp would connect to it asking no resolver
            _check_address(raw)  # here, so that a legacy form aiohttp refuses to parse is named as the guard's refusal
        return await self._client().post(target, data=body, headers=dict(headers), allow_redirects=False)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


async def _verdict(answer: aiohttp.ClientResponse) -> SendResult:
    """The status decides. The body is read, bounded in size and time, so that the connection is kept alive (or for
    a failure's snippet); a body that stalls or breaks changes nothing but the connection, which is then dropped."""
    ok = 200 <= answer.status < 300
    limit, snippet = (_KEEP_ALIVE_BODY if ok else _SNIPPET), b""
    try:
        async with asyncio.timeout(_BODY_WAIT):
            while len(snippet) < limit and (chunk := await answer.content.read(limit - len(snippet))):
                snippet += chunk
    except (TimeoutError, aiohttp.ClientError):
        answer.close()
    finally:
        answer.release()  # a longer answer, not read to its end, closes its connection
    if ok:
        return SendResult(status_code=answer.status)
    text = snippet[:_SNIPPET].decode("utf-8", "replace").strip()
    return SendResult(status_code=answer.status, error=f"HTTP {answer.status}" + (f": {text}" if text else ""))

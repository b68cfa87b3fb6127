"""Where a webhook may be sent: an absolute http(s) URL whose host resolves to public addresses only."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from core.errors import FieldError, ValidationFailed

MAX_URL_LENGTH = 2048


def check_url(url: str, field: str = "url") -> str:
    """An absolute http(s) URL with a host, at most 2048 characters."""
    problem = None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        problem = "must be an absolute http:// or https:// URL"
    else:
        if len(url) > MAX_URL_LENGTH:
            problem = f"must be at most {MAX_URL_LENGTH} characters"
        elif parts.scheme not in ("http", "https") or not parts.hostname:
            problem = "must be an absolute http:// or https:// URL"
        elif any(ch.isspace() or ord(ch) < 32 for ch in url):
            problem = "must not contain whitespace or control characters"
    if problem:
        raise ValidationFailed([FieldError(field, problem)])
    return url


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # the well-known prefix: the IPv4 address is the last 32 bits
#: Local-use NAT64 prefixes (/48 to /96, RFC 8215): where the IPv4 address sits depends on the prefix length,
#: which cannot be known here, so the whole range is refused (IANA: not globally reachable).
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")
_LAST_32_BITS = (ipaddress.IPv6Network("::/96"), ipaddress.IPv6Network("::ffff:0:0:0/96"))  # compatible, translated


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one leads to: mapped, 6to4, Teredo client, NAT64 or IPv4-compatible."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64 or any(ip in net for net in _LAST_32_BITS):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public_address(address: str) -> bool:
    """False for private, loopback, link-local, site-local, multicast, reserved and unspecified addresses, in
    IPv4 or IPv6, including IPv6 forms that embed an IPv4 one (mapped, 6to4, Teredo, NAT64, compatible):
    a webhook must not reach into the network the service runs in."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.is_site_local or ip in _LOCAL_NAT64:
            return False
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return is_public_address(str(embedded))
    return ip.is_global and not ip.is_multicast


def refused_addresses(addresses: Iterable[str]) -> list[str]:
    """The addresses among `addresses` a webhook may not be sent to."""
    return [address for address in addresses if not is_public_address(address)]

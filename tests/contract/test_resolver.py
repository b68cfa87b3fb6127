"""The `Resolver` port (the SSRF guard's name lookups): one suite over the fixed table and the system resolver."""

from __future__ import annotations

import ipaddress

import pytest

from adapters.memory.webhooks import FixedResolver

#: Names that resolve in both backends: the fake from its table, the system from /etc/hosts.
KNOWN = "localhost"


@pytest.fixture(params=["memory", "system"])
def resolver(request: pytest.FixtureRequest):
    """The fake with a table, or the resolver the composition root gives every process."""
    if request.param == "memory":
        return FixedResolver({KNOWN: ["127.0.0.1", "::1"]})
    return request.getfixturevalue("services").resolver


@pytest.mark.parametrize("address", ["10.1.2.3", "93.184.216.34", "::1", "2001:db8::7"])
async def test_an_address_resolves_to_itself(resolver, address: str) -> None:
    assert await resolver.resolve(address) == [address]


async def test_a_name_resolves_to_distinct_addresses(resolver) -> None:
    addresses = await resolver.resolve(KNOWN)
    assert addresses and len(addresses) == len(set(addresses))
    assert {ipaddress.ip_address(a).is_loopback for a in addresses} == {True}


@pytest.mark.parametrize("host", ["no-such-host.invalid", "bad..name.invalid"])
async def test_a_name_that_does_not_resolve_is_empty(resolver, host: str) -> None:
    assert await resolver.resolve(host) == []

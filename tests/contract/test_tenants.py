"""Tenants: get_or_create by name and API keys found by the hash of their plain value."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from core.ids import new_id
from core.tenants import ApiKey, hash_key
from core.usecases.api_keys import CreateApiKey, authenticate, create_api_key

pytestmark = pytest.mark.timeout(30)


async def test_get_or_create_is_idempotent(uow_factory, clock) -> None:
    name = f"tenant-{secrets.token_hex(6)}"
    async with uow_factory() as uow:
        created = await uow.tenants.get_or_create(name, clock.now())
    async with uow_factory() as uow:
        again = await uow.tenants.get_or_create(name, clock.now())
    async with uow_factory() as uow:
        other = await uow.tenants.get_or_create(name + "-other", clock.now())
    assert again == created
    assert created.name == name
    assert other.id != created.id


async def test_concurrent_get_or_create_makes_one_tenant(uow_factory, clock) -> None:
    name = f"tenant-{secrets.token_hex(6)}"

    async def get_or_create():
        async with uow_factory() as uow:
            tenant = await uow.tenants.get_or_create(name, clock.now())
        return tenant

    tenants = await asyncio.wait_for(asyncio.gather(*(get_or_create() for _ in range(5))), 10)
    assert len({t.id for t in tenants}) == 1


async def test_an_uncommitted_tenant_is_rolled_back(uow_factory, clock) -> None:
    name = f"tenant-{secrets.token_hex(6)}"
    with pytest.raises(RuntimeError, match="roll back"):
        async with uow_factory() as uow:
            dropped = await uow.tenants.get_or_create(name, clock.now())
            raise RuntimeError("roll back")
    async with uow_factory() as uow:
        kept = await uow.tenants.get_or_create(name, clock.now())
    assert kept.id != dropped.id


async def test_key_by_hash(uow_factory, clock, tenant) -> None:
    plain = f"pk_{secrets.token_hex(16)}"
    key = ApiKey(id=new_id(), tenant_id=tenant.id, key_hash=hash_key(plain), prefix=plain[:10], scopes=("read",),
                 created_at=clock.now())
    async with uow_factory() as uow:
        uow.tenants.add_key(key)
        assert await uow.tenants.key_by_hash(key.key_hash) is None  # buffered until commit
    async with uow_factory() as uow:
        assert await uow.tenants.key_by_hash(key.key_hash) == key
        assert await uow.tenants.key_by_hash(hash_key(plain + "x")) is None


async def test_create_api_key_then_authenticate(uow_factory, clock) -> None:
    name = f"tenant-{secrets.token_hex(6)}"
    async with uow_factory() as uow:
        plain, key = await create_api_key(CreateApiKey(tenant=name, scopes=("write", "read")), uow=uow, clock=clock)
    async with uow_factory() as uow:
        principal = await authenticate(plain, "write", lookup=uow.tenants.key_by_hash)
        tenant = await uow.tenants.get_or_create(name, clock.now())
    assert (principal.tenant_id, principal.key_id) == (tenant.id, key.id)
    assert principal.scopes == frozenset({"read", "write"})
    assert key.scopes == ("read", "write")

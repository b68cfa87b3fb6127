"""Tenants: get_or_create by name and API keys found by the hash of their plain value."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta

import pytest

from core.errors import NotFound, Unauthorized
from core.ids import new_id
from core.tenants import KEY_PREFIX, ApiKey, generate_key, hash_key
from core.usecases.api_keys import (
    CreateApiKey,
    authenticate,
    create_api_key,
    list_api_keys,
    record_key_use,
    revoke_api_key,
)

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
    plain = f"sk_{secrets.token_hex(16)}"
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


def test_keys_are_secret_keys_of_256_random_bits_in_base62() -> None:
    keys = {generate_key() for _ in range(200)}
    assert len(keys) == 200
    for key in keys:
        assert key.startswith(KEY_PREFIX) and KEY_PREFIX == "sk_"
        assert len(key) == 3 + 43 and key[3:].isascii() and key[3:].isalnum()


async def test_keys_are_listed_by_tenant_with_prefix_and_last_four_never_the_value(uow_factory, clock) -> None:
    first, second = f"tenant-{secrets.token_hex(6)}", f"tenant-{secrets.token_hex(6)}"
    async with uow_factory() as uow:
        plain_a, key_a = await create_api_key(CreateApiKey(tenant=first, scopes=("read",)), uow=uow, clock=clock)
    async with uow_factory() as uow:
        plain_b, key_b = await create_api_key(CreateApiKey(tenant=first, scopes=("read", "write")), uow=uow,
                                              clock=clock)
        await create_api_key(CreateApiKey(tenant=second, scopes=("write",)), uow=uow, clock=clock)
    async with uow_factory() as uow:
        listed = await list_api_keys(first, uow=uow)
        everything = await list_api_keys(None, uow=uow)
    assert [(item.tenant, item.key.id) for item in listed] == [(first, key_a.id), (first, key_b.id)]
    assert [(k.key.prefix, k.key.last4, k.key.scopes) for k in listed] == [
        (plain_a[:10], plain_a[-4:], ("read",)), (plain_b[:10], plain_b[-4:], ("read", "write"))]
    assert {item.tenant for item in everything} >= {first, second}
    assert all(item.key.last_used_at is None and item.key.revoked_at is None for item in listed)


async def test_a_revoked_key_authenticates_nothing_and_stays_revoked_at_its_first_time(uow_factory, clock) -> None:
    async with uow_factory() as uow:
        plain, key = await create_api_key(CreateApiKey(tenant=f"tenant-{secrets.token_hex(6)}", scopes=("read",)),
                                          uow=uow, clock=clock)
    async with uow_factory() as uow:
        before, live = await revoke_api_key(key.id, uow=uow, clock=clock)
    assert live and before.revoked_at is None
    async with uow_factory() as uow:
        again, live = await revoke_api_key(key.id, uow=uow, clock=clock)
        with pytest.raises(Unauthorized):
            await authenticate(plain, "read", lookup=uow.tenants.key_by_hash)
    assert not live and again.revoked_at is not None
    async with uow_factory() as uow:
        assert (await uow.tenants.key_by_id(key.id)).revoked_at == again.revoked_at
        with pytest.raises(NotFound):
            await revoke_api_key(new_id(), uow=uow, clock=clock)


async def test_a_key_use_is_recorded_and_never_moves_back(uow_factory, clock) -> None:
    name = f"tenant-{secrets.token_hex(6)}"
    async with uow_factory() as uow:
        _, key = await create_api_key(CreateApiKey(tenant=name, scopes=("read",)), uow=uow, clock=clock)
    async with uow_factory() as uow:
        await record_key_use(key.id, uow=uow, clock=clock)
    async with uow_factory() as uow:
        used = (await uow.tenants.key_by_id(key.id)).last_used_at
        uow.tenants.mark_used(key.id, used - timedelta(minutes=5))  # a slower process reporting an older use
        uow.tenants.mark_used(new_id(), used)  # a key deleted meanwhile: nothing to note
    async with uow_factory() as uow:
        listed = await list_api_keys(name, uow=uow)
    assert used is not None and listed[0].key.last_used_at == used

"""A claim in a unit of work that declared its accounts, then their lock: on PostgreSQL both are one statement
(one round trip, issue 12); every outcome is the same as claiming and locking apart, on both backends."""

from __future__ import annotations

import asyncio
import secrets

import asyncpg
import pytest

from adapters.postgres.uow import PgUnitOfWork
from app.bootstrap import bootstrap
from core.errors import IdempotencyRequestInProgress, InsufficientFunds
from core.money import Money
from core.usecases.transfers import MakeTransfer, make_transfer
from tests.contract.builders import WAITING
from tests.contract.conftest import balance, new_tenant, open_account
from tests.contract.test_idempotency_keys import make_record, make_request

pytestmark = pytest.mark.timeout(60)


async def test_the_lock_after_a_claim_sees_the_accounts_as_committed(uow_factory, clock, tenant, audit) -> None:
    a = await open_account(uow_factory, clock, tenant.id, 1_000)
    b = await open_account(uow_factory, clock, tenant.id, user_id="bob")
    first = MakeTransfer(tenant_id=tenant.id, source_account_id=a.id, destination_account_id=b.id,
                         amount=Money(100, "USD"))
    async with uow_factory(lock_accounts=first.locked_accounts) as uow:  # declared, no claim: locked apart
        await make_transfer(first, uow=uow, clock=clock)
    request = make_request(tenant.id)
    second = MakeTransfer(tenant_id=tenant.id, source_account_id=b.id, destination_account_id=a.id,
                          amount=Money(60, "USD"))
    async with uow_factory(lock_accounts=second.locked_accounts) as uow:
        assert await uow.idempotency.claim(request, clock.now()) is None
        locked = await uow.accounts.lock(tenant.id, [b.id, a.id])
        assert {k: v.balance for k, v in locked.items()} == {a.id: 900, b.id: 100}
        await make_transfer(second, uow=uow, clock=clock)  # locks them again: what this unit of work changed
        uow.idempotency.add(make_record(request, clock.now()))
    async with uow_factory(lock_accounts=second.locked_accounts) as uow:  # replayed, and nothing else moves
        assert (await uow.idempotency.claim(request, clock.now())) is not None
    assert (await balance(uow_factory, tenant.id, a.id), await balance(uow_factory, tenant.id, b.id)) == (960, 40)
    assert await audit.drift() == []


async def test_a_refused_transfer_after_a_claim_changes_nothing(uow_factory, clock, tenant, audit) -> None:
    a = await open_account(uow_factory, clock, tenant.id, 50)
    b = await open_account(uow_factory, clock, tenant.id, user_id="bob")
    cmd = MakeTransfer(tenant_id=tenant.id, source_account_id=a.id, destination_account_id=b.id,
                       amount=Money(51, "USD"))
    with pytest.raises(InsufficientFunds):
        async with uow_factory(lock_accounts=cmd.locked_accounts) as uow:
            assert await uow.idempotency.claim(make_request(tenant.id), clock.now()) is None
            await make_transfer(cmd, uow=uow, clock=clock)
    assert (await balance(uow_factory, tenant.id, a.id), await balance(uow_factory, tenant.id, b.id)) == (50, 0)
    assert await audit.drift() == []


async def test_locking_other_accounts_than_declared_or_of_another_tenant(uow_factory, clock, tenant) -> None:
    other = await new_tenant(uow_factory, clock)
    a = await open_account(uow_factory, clock, tenant.id, 300)
    b = await open_account(uow_factory, clock, tenant.id, user_id="bob")
    async with uow_factory(lock_accounts=[a.id]) as uow:  # b was not declared: locked when asked for
        assert await uow.idempotency.claim(make_request(tenant.id), clock.now()) is None
        assert {k: v.balance for k, v in (await uow.accounts.lock(tenant.id, [a.id, b.id])).items()} == {
            a.id: 300, b.id: 0}
    async with uow_factory(lock_accounts=[a.id, b.id]) as uow:  # the claim is another tenant's: a is not theirs
        assert await uow.idempotency.claim(make_request(other.id), clock.now()) is None
        assert await uow.accounts.lock(other.id, [a.id, b.id]) == {}
        assert set(await uow.accounts.lock(tenant.id, [a.id, b.id])) == {a.id, b.id}


async def test_the_claim_holds_the_declared_rows_until_the_unit_of_work_ends(services, clock) -> None:
    """PostgreSQL: the claim's statement takes the accounts' row locks (nothing else does before `accounts.lock`)."""
    tenant = await new_tenant(services.uow_factory, clock)
    a = await open_account(services.uow_factory, clock, tenant.id, 300)
    b = await open_account(services.uow_factory, clock, tenant.id, user_id="bob")
    probe = "SELECT count(*) FROM (SELECT 1 FROM accounts WHERE id = ANY($1::uuid[]) FOR UPDATE NOWAIT) AS rows"
    async with services.uow_factory(lock_accounts=[b.id, a.id]) as uow:
        assert isinstance(uow, PgUnitOfWork)
        assert await uow.idempotency.claim(make_request(tenant.id), clock.now()) is None
        for account in (a, b):
            with pytest.raises(asyncpg.LockNotAvailableError):
                async with services.pool.acquire() as conn, conn.transaction():
                    await conn.fetchval(probe, [account.id])
    async with services.pool.acquire() as conn, conn.transaction():
        assert await conn.fetchval(probe, [a.id, b.id]) == 2


async def test_a_claim_waiting_on_another_process_rows_then_sees_its_commit(services, database_url, redis_url,
                                                                             clock) -> None:
    """PostgreSQL, two processes' worth of units of work (no shared turns or local locks): the second claim waits
    in the server for the rows the first holds and then reads them as the first committed them (no lost update);
    a claim of the same key meanwhile answers in progress."""
    other = await bootstrap(services.settings, database_url, redis_url)
    try:
        tenant = await new_tenant(services.uow_factory, clock)
        a = await open_account(services.uow_factory, clock, tenant.id, 1_000)
        b = await open_account(services.uow_factory, clock, tenant.id, user_id="bob")
        cmd = MakeTransfer(tenant_id=tenant.id, source_account_id=a.id, destination_account_id=b.id,
                           amount=Money(300, "USD"))
        key = f"k-{secrets.token_hex(4)}"

        async def second() -> int:
            async with other.uow_factory(lock_accounts=cmd.locked_accounts) as uow:
                assert await uow.idempotency.claim(make_request(tenant.id), clock.now()) is None
                await make_transfer(cmd, uow=uow, clock=clock)
            return 1

        async with services.uow_factory(lock_accounts=cmd.locked_accounts) as uow:
            assert await uow.idempotency.claim(make_request(tenant.id, key), clock.now()) is None
            await make_transfer(cmd, uow=uow, clock=clock)
            waiting = asyncio.create_task(second())
            while not await services.pool.fetchval(WAITING):
                assert not waiting.done(), waiting
                await asyncio.sleep(0.01)
            with pytest.raises(IdempotencyRequestInProgress):  # the same key in the other process
                async with other.uow_factory(lock_accounts=[]) as same:
                    await same.idempotency.claim(make_request(tenant.id, key), clock.now())
        assert await asyncio.wait_for(waiting, 20) == 1
        assert (await balance(services.uow_factory, tenant.id, a.id),
                await balance(services.uow_factory, tenant.id, b.id)) == (400, 600)
        assert await services.audit.drift() == []
    finally:
        await other.aclose()


async def test_a_held_or_stored_key_locks_no_account(services, clock) -> None:
    """PostgreSQL: the claim locks the declared accounts only for a request that is to run; a key in flight answers
    in progress and a stored one replays, neither waiting for nor holding the accounts' rows."""
    tenant = await new_tenant(services.uow_factory, clock)
    a = await open_account(services.uow_factory, clock, tenant.id, 300)
    b = await open_account(services.uow_factory, clock, tenant.id, user_id="bob")
    probe = "SELECT count(*) FROM (SELECT 1 FROM accounts WHERE id = ANY($1::uuid[]) FOR UPDATE NOWAIT) AS rows"
    held, stored = make_request(tenant.id), make_request(tenant.id)
    async with services.uow_factory() as uow:
        uow.idempotency.add(make_record(stored, clock.now()))
    async with services.uow_factory() as holder:
        assert await holder.idempotency.claim(held, clock.now()) is None
        async with services.uow_factory(lock_accounts=[a.id, b.id]) as uow:
            with pytest.raises(IdempotencyRequestInProgress):
                await uow.idempotency.claim(held, clock.now())
            async with services.pool.acquire() as conn, conn.transaction():
                assert await conn.fetchval(probe, [a.id, b.id]) == 2
    async with services.uow_factory(lock_accounts=[a.id, b.id]) as uow:
        assert (await uow.idempotency.claim(stored, clock.now())) is not None
        async with services.pool.acquire() as conn, conn.transaction():
            assert await conn.fetchval(probe, [a.id, b.id]) == 2
        assert set(await uow.accounts.lock(tenant.id, [a.id, b.id])) == {a.id, b.id}  # locked apart, if asked


async def test_a_request_queued_behind_another_on_its_accounts_claims_alone(services, clock) -> None:
    """In one process, a unit of work whose accounts' local locks are busy claims without locking them (so a key
    in flight answers at once) and waits for them in `accounts.lock`, as before issue 12."""
    tenant = await new_tenant(services.uow_factory, clock)
    a = await open_account(services.uow_factory, clock, tenant.id, 300)
    b = await open_account(services.uow_factory, clock, tenant.id, user_id="bob")
    request = make_request(tenant.id)
    async with services.uow_factory(lock_accounts=[a.id, b.id]) as first:
        assert await first.idempotency.claim(request, clock.now()) is None
        async with services.uow_factory(lock_accounts=[a.id, b.id]) as second:
            with pytest.raises(IdempotencyRequestInProgress):
                await asyncio.wait_for(second.idempotency.claim(request, clock.now()), 10)

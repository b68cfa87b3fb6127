"""PostgreSQL units of work never wait without end inside the process: for a pooled connection, or for
the in-process account lock inside a transaction, each gives up with `Unavailable` after
PAYMENTS_DATABASE_ACQUIRE_TIMEOUT and gives back what it held (the turns are covered by the contract suite)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import asyncpg
import attrs
import pytest

from adapters.postgres.uow import PgUnitOfWork
from app.bootstrap import Services, bootstrap
from core.clock import SystemClock
from core.errors import Unavailable
from core.usecases.accounts import CreateAccount, create_account
from tests.contract.conftest import new_tenant, open_account

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def tight(services: Services, database_url: str, redis_url: str) -> AsyncIterator[Services]:
    """The session's settings with two pooled connections and a 0.3 s bound on waiting."""
    database = attrs.evolve(services.settings.database, acquire_timeout=0.3, pool_max=2)
    built = await bootstrap(attrs.evolve(services.settings, database=database), database_url, redis_url)
    try:
        yield built
    finally:
        await built.aclose()


async def test_waiting_for_the_account_lock_inside_a_transaction_is_bounded(tight: Services) -> None:
    clock = SystemClock()
    tenant = await new_tenant(tight.uow_factory, clock)
    account = await open_account(tight.uow_factory, clock, tenant.id, 100)
    async with tight.uow_factory() as first:
        await first.accounts.lock(tenant.id, [account.id])
        with pytest.raises(Unavailable, match=str(account.id)):
            async with tight.uow_factory() as second:  # declares nothing: it queues holding its connection
                await second.accounts.lock(tenant.id, [account.id])
    async with tight.uow_factory() as third:  # both gave back their locks and connections
        assert list(await third.accounts.lock(tenant.id, [account.id])) == [account.id]


async def test_waiting_for_a_pooled_connection_is_bounded(tight: Services) -> None:
    async with tight.uow_factory(), tight.uow_factory():
        with pytest.raises(Unavailable):
            async with tight.uow_factory():
                pass  # never reached: both connections are taken
    async with tight.uow_factory(read_only=True) as uow, tight.uow_factory() as other:  # all back in the pool
        assert await uow.accounts.get(uuid4(), uuid4()) is None
        assert await other.accounts.lock(uuid4(), [uuid4()]) == {}


class ResetOverruns:
    """The session's pool, except that resetting a released connection overruns its timeout: asyncpg then
    terminates the connection and raises TimeoutError from `release` (what an overloaded machine did)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.release_timeouts: list[float | None] = []

    async def acquire(self, *, timeout: float | None = None) -> Any:
        return await self._pool.acquire(timeout=timeout)

    async def release(self, conn: Any, *, timeout: float | None = None) -> None:
        self.release_timeouts.append(timeout)
        conn.terminate()
        await self._pool.release(conn)
        raise TimeoutError


def overrunning(services: Services, pool: ResetOverruns) -> PgUnitOfWork:
    return PgUnitOfWork(pool, read_only=False, acquire_timeout=0.3, secret_box=services.secret_box)  # type: ignore[arg-type]


async def test_a_connection_that_cannot_be_reset_fails_neither_a_commit_nor_an_error(services: Services) -> None:
    clock = SystemClock()
    tenant = await new_tenant(services.uow_factory, clock)
    pool = ResetOverruns(services.pool)
    async with overrunning(services, pool) as uow:  # was: TimeoutError out of the block after the commit (a 500)
        opened = await create_account(CreateAccount(tenant_id=tenant.id, user_id="alice", currency="USD"),
                                      uow=uow, clock=clock)
    async with services.uow_factory(read_only=True) as check:
        assert await check.accounts.get(tenant.id, opened.id) is not None  # committed
    with pytest.raises(Unavailable):  # the block's own error, not the release's TimeoutError
        async with overrunning(services, pool):
            raise Unavailable("the database is unavailable; retry later")
    assert pool.release_timeouts == [0.3, 0.3]  # a bound of its own, not what was left of the wait to acquire

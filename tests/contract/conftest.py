"""The contract suite's backends: every test runs on the in-memory fakes and on PostgreSQL.

`uow_factory` is the `UnitOfWorkFactory` under test, `audit` the matching `LedgerAudit`.
`probe` reads and breaks what no port exposes (outbox rows, raw balances, stored ledger
entries), so that tests can check effects and prove the audit is able to fail.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import pytest

from adapters.memory import InMemoryLedgerAudit, InMemoryStore
from adapters.memory.webhooks import MemoryDueDeliveries
from adapters.postgres.ledger import COLUMNS as ENTRY_COLUMNS
from adapters.postgres.rows import insert_entities
from app.bootstrap import Services, bootstrap
from app.configuration import load_settings
from core.accounts import Account
from core.clock import SystemClock
from core.ledger import Entry
from core.money import Money
from core.payments import Payment
from core.ports import LedgerAudit, UnitOfWorkFactory
from core.tenants import Tenant
from core.usecases.accounts import CreateAccount, create_account
from core.usecases.transfers import MakeTransfer, make_transfer
from tests.conftest import SECRETS_KEYS, fresh_database
from tests.contract.builders import Cleanup

BACKENDS = ["memory", "postgres"]


class MemoryProbe:
    def __init__(self, store: InMemoryStore) -> None:
        self._store = store

    async def outbox(self, tenant_id: UUID) -> list[tuple[str, UUID]]:
        return [(m.topic, m.aggregate_id) for m in self._store.outbox if m.tenant_id == tenant_id]

    async def shift(self, account_id: UUID, *, balance: int = 0, version: int = 0) -> None:
        account = self._store.accounts[account_id]
        account.balance += balance
        account.version += version

    async def rewrite(self, account_id: UUID, entries: list[Entry]) -> None:
        """Replace the account's stored entries by `entries`, as someone with write access to the store could."""
        self._store.entries[:] = [e for e in self._store.entries if e.account_id != account_id] + entries


class PostgresProbe:
    def __init__(self, services: Services) -> None:
        self._pool = services.pool

    async def outbox(self, tenant_id: UUID) -> list[tuple[str, UUID]]:
        rows = await self._pool.fetch(
            "SELECT topic, aggregate_id FROM outbox WHERE tenant_id = $1 ORDER BY created_at, id", tenant_id)
        return [(row["topic"], row["aggregate_id"]) for row in rows]

    async def shift(self, account_id: UUID, *, balance: int = 0, version: int = 0) -> None:
        await self._pool.execute("UPDATE accounts SET balance = balance + $2, version = version + $3 WHERE id = $1",
                                 account_id, balance, version)

    async def rewrite(self, account_id: UUID, entries: list[Entry]) -> None:
        """Replace the account's stored rows by `entries` directly in SQL, as a superuser could: with
        session_replication_role = replica no trigger fires (neither append-only nor the balanced-posting check)."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute("DELETE FROM account_transactions WHERE account_id = $1", account_id)
            for sql, args in insert_entities("account_transactions", ENTRY_COLUMNS, entries):
                await conn.execute(sql, *args)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def uow_factory(backend: str, services: Services) -> UnitOfWorkFactory:
    """A fresh in-memory store, or the session's PostgreSQL unit-of-work factory."""
    return InMemoryStore() if backend == "memory" else services.uow_factory


@pytest.fixture
def audit(backend: str, uow_factory: Any, services: Services) -> LedgerAudit:
    return InMemoryLedgerAudit(uow_factory) if backend == "memory" else services.audit


@pytest.fixture
def probe(backend: str, uow_factory: Any, services: Services) -> MemoryProbe | PostgresProbe:
    return MemoryProbe(uow_factory) if backend == "memory" else PostgresProbe(services)


@pytest.fixture
def clock() -> SystemClock:
    return SystemClock()


async def new_tenant(uow_factory: UnitOfWorkFactory, clock: SystemClock) -> Tenant:
    async with uow_factory() as uow:
        tenant = await uow.tenants.get_or_create(f"contract-{secrets.token_hex(6)}", clock.now())
    return tenant


@pytest.fixture
async def tenant(uow_factory: UnitOfWorkFactory, clock: SystemClock) -> Tenant:
    """A new tenant, committed, so every test sees only its own rows."""
    return await new_tenant(uow_factory, clock)


async def open_account(
    uow_factory: UnitOfWorkFactory, clock: SystemClock, tenant_id: UUID, balance: int = 0, *,
    currency: str = "USD", user_id: str = "alice",
) -> Account:
    async with uow_factory() as uow:
        account = await create_account(
            CreateAccount(tenant_id=tenant_id, user_id=user_id, currency=currency,
                          initial_balance=Money(balance, currency) if balance else None),
            uow=uow, clock=clock,
        )
    return account


async def transfer(
    uow_factory: UnitOfWorkFactory, clock: SystemClock, tenant_id: UUID, source: UUID, destination: UUID,
    minor: int, currency: str = "USD",
) -> Payment:
    async with uow_factory() as uow:
        payment = await make_transfer(
            MakeTransfer(tenant_id=tenant_id, source_account_id=source, destination_account_id=destination,
                         amount=Money(minor, currency)),
            uow=uow, clock=clock,
        )
    return payment


async def system_balance(uow_factory: UnitOfWorkFactory, services: Services, tenant_id: UUID, kind: str,
                         currency: str = "USD") -> int:
    """A system account's balance: the sum of its rows (API.md §4), 0 while it has none."""
    if isinstance(uow_factory, InMemoryStore):
        return sum(a.balance for a in uow_factory.accounts.values()
                   if (a.tenant_id, a.kind, a.currency) == (tenant_id, kind, currency))
    return int(await services.pool.fetchval(
        "SELECT coalesce(sum(balance), 0) FROM accounts WHERE tenant_id = $1 AND kind = $2 AND currency = $3",
        tenant_id, kind, currency))


async def balance(uow_factory: UnitOfWorkFactory, tenant_id: UUID, account_id: UUID) -> int | None:
    async with uow_factory() as uow:
        account = await uow.accounts.get(tenant_id, account_id)
    return None if account is None else account.balance


@pytest.fixture
async def cleanup(backend: str, services: Services) -> AsyncIterator[Cleanup]:
    """Deletes, after the test, the rows it registered that every-tenant ports (in-flight, dead letters) read."""
    done = Cleanup(services.pool if backend == "postgres" else None)
    yield done
    await done()


@pytest.fixture
async def private(backend: str, admin_database_url: str, redis_url: str) -> AsyncIterator[Any]:
    """A store of this test's own: claiming due deliveries takes every tenant's, and no one else's may go."""
    if backend == "memory":
        store = InMemoryStore()
        yield store, MemoryDueDeliveries(store)
        return
    with fresh_database(admin_database_url) as url:
        own = await bootstrap(load_settings({"PAYMENTS_SECRETS_KEYS": SECRETS_KEYS}), url, redis_url)
        try:
            yield own.uow_factory, own.due_deliveries
        finally:
            await own.aclose()

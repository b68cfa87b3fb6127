"""Rows for the payments, refunds, dead-letter and in-flight suites, written through a unit of work,
and a `Cleanup` that deletes a tenant's rows from PostgreSQL afterwards (those ports read every tenant)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from core.ids import new_id
from core.payments import Payment, PaymentStatus, PaymentType
from core.ports import UnitOfWorkFactory
from core.refunds import Refund, RefundStatus
from core.work import DeadLetter

T0 = datetime(2001, 2, 3, 4, 5, 6, 789000, tzinfo=UTC)


def payment(
    tenant_id: UUID, source: UUID, *, at: datetime = T0, status: PaymentStatus = PaymentStatus.PENDING,
    destination: UUID | None = None, amount: int = 1_000, currency: str = "USD", provider: str = "stripe",
    updated_at: datetime | None = None, next_attempt_at: datetime | None = None, correlation_id: str | None = None,
) -> Payment:
    """A new payment with its `payment.created` event: external through `provider`, or a transfer to
    `destination`."""
    made = Payment(
        id=new_id(), tenant_id=tenant_id,
        payment_type=PaymentType.INTERNAL_TRANSFER if destination else PaymentType.EXTERNAL_PAYMENT,
        status=status, source_account_id=source, destination_account_id=destination, amount=amount,
        currency=currency, provider=None if destination else provider, description="order ☃ 7",
        metadata={"order": "7", "note": "é"}, next_attempt_at=next_attempt_at, correlation_id=correlation_id,
        created_at=at, updated_at=updated_at or at,
    )
    made.record("payment.created", at, amount="10.00")
    return made


def refund(
    paid: Payment, *, at: datetime = T0, status: RefundStatus = RefundStatus.PENDING, amount: int = 100,
    updated_at: datetime | None = None, next_attempt_at: datetime | None = None, correlation_id: str | None = None,
) -> Refund:
    made = Refund(id=new_id(), tenant_id=paid.tenant_id, payment_id=paid.id, amount=amount, currency=paid.currency,
                  reason="changed mind", next_attempt_at=next_attempt_at, correlation_id=correlation_id,
                  created_at=at, updated_at=updated_at or at)
    if status == RefundStatus.SUCCEEDED:
        made.succeed("re_1", updated_at or at)
    elif status == RefundStatus.FAILED:
        made.fail("card closed", updated_at or at)
    return made


def letter(tenant_id: UUID, kind: str, target_id: UUID, *, at: datetime = T0,
           correlation_id: str | None = None) -> DeadLetter:
    return DeadLetter(id=new_id(), tenant_id=tenant_id, kind=kind, target_id=target_id, error="provider said no",
                      attempts=5, correlation_id=correlation_id, created_at=at)


async def add(uow_factory: UnitOfWorkFactory, *rows: Payment | Refund | DeadLetter) -> None:
    """Commit `rows` in one unit of work."""
    async with uow_factory() as uow:
        for row in rows:
            if isinstance(row, Payment):
                uow.payments.add(row)
            elif isinstance(row, Refund):
                uow.refunds.add(row)
            else:
                uow.dead_letters.add(row)
    for row in rows:
        if isinstance(row, Payment):
            row.events.clear()  # committed: what a read would give back


class Cleanup:
    """Deletes what tests wrote for the tenants it was given, so ports that read every tenant
    (`InFlight`, `DeadLetters`) see only the current test's rows."""

    def __init__(self, pool: Any | None) -> None:
        self._pool, self.tenants = pool, set[UUID]()

    async def __call__(self) -> None:
        if self._pool is None or not self.tenants:
            return
        ids = list(self.tenants)
        for table in ("dead_letters", "refunds", "payment_events", "payments"):
            await self._pool.execute(f"DELETE FROM {table} WHERE tenant_id = ANY($1::uuid[])", ids)


WAITING = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"


async def blocked(backend: str, uow_factory: Any, services: Any, key: Any) -> None:
    """Return once some unit of work waits for the row lock `key` (("payment", id), ("refund", id), or an
    account id): in memory on the row's lock; on PostgreSQL on a lock in the server, or on the process's
    local account lock that PostgreSQL units of work take first."""
    while True:
        if backend == "memory":
            lock = uow_factory.row_locks.get(key)
            if lock is not None and getattr(lock, "_waiters", None):
                return
        elif services.local_locks._users.get(key, 0) > 1 or await services.pool.fetchval(WAITING):
            return
        await asyncio.sleep(0.01)

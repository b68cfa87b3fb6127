"""Payments and their event history in PostgreSQL: row locks, version-checked updates, filtered listing."""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any
from uuid import UUID

import asyncpg

from adapters.cursor import time_id_cursor, time_id_key
from adapters.postgres.rows import insert_rows
from core.payments import Payment, PaymentEvent
from core.ports import Page, PaymentFilter

if TYPE_CHECKING:
    from adapters.postgres.rows import Fragment
    from adapters.postgres.uow import PgUnitOfWork

COLUMNS = (
    "id, tenant_id, payment_type, status, source_account_id, destination_account_id, amount, currency,"
    " provider, provider_reference, refunded_amount, failure_reason, description, metadata, version,"
    " attempts, next_attempt_at, correlation_id, created_at, updated_at, completed_at"
)

GET = f"SELECT {COLUMNS} FROM payments WHERE tenant_id = $1 AND id = $2"
LOCK = GET + " FOR UPDATE"

LIST = f"""SELECT {COLUMNS} FROM payments
WHERE tenant_id = $1 AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR payment_type = $3)
  AND ($4::uuid IS NULL OR source_account_id = $4 OR destination_account_id = $4)
  AND ($5::text IS NULL OR provider = $5)
  AND ($6::timestamptz IS NULL OR created_at >= $6) AND ($7::timestamptz IS NULL OR created_at < $7)
  AND ($8::timestamptz IS NULL OR (created_at, id) < ($8, $9::uuid))
ORDER BY created_at DESC, id DESC LIMIT $10"""

# The version check: the row is written only if nobody wrote it since it was read. Every change
# records an event whose sequence is the new version, so a lost race also collides on the
# (payment_id, sequence) key, which the unit of work reports as a ConcurrencyConflict.
UPDATE = """UPDATE payments SET status = $3, provider_reference = $4, refunded_amount = $5, failure_reason = $6,
    version = $7, attempts = $8, next_attempt_at = $9, updated_at = $10, completed_at = $11
WHERE id = $1 AND version = $2 RETURNING id"""

EVENT_COLUMNS = "id, tenant_id, payment_id, sequence, type, data, correlation_id, created_at"

EVENTS = f"SELECT {EVENT_COLUMNS} FROM payment_events WHERE tenant_id = $1 AND payment_id = $2 ORDER BY sequence"


_FIELDS = COLUMNS.replace(" ", "").split(",")
_EVENT_FIELDS = EVENT_COLUMNS.replace(" ", "").split(",")


def to_payment(row: asyncpg.Record) -> Payment:
    return Payment(**{field: row[field] for field in _FIELDS})


class PgPayments:
    """The `Payments` port on PostgreSQL; a payment's pending events are written with it."""

    def __init__(self, uow: PgUnitOfWork) -> None:
        self._uow = uow
        self._new: builtins.list[Payment] = []
        self._dirty: dict[UUID, Payment] = {}

    async def get(self, tenant_id: UUID, payment_id: UUID) -> Payment | None:
        row = await self._uow.fetchrow(GET, tenant_id, payment_id)
        return to_payment(row) if row else None

    async def lock(self, tenant_id: UUID, payment_id: UUID) -> Payment | None:
        row = await self._uow.fetchrow(LOCK, tenant_id, payment_id)
        if row is None:
            return None
        return self._dirty.get(payment_id) or to_payment(row)  # this unit of work's own changes win

    async def list(self, tenant_id: UUID, where: PaymentFilter, *, limit: int, cursor: str | None) -> Page[Payment]:
        after: builtins.list[Any] = [None, None] if cursor is None else builtins.list(time_id_key(cursor))
        rows = await self._uow.fetch(LIST, tenant_id, where.status, where.payment_type, where.account_id,
                                     where.provider, where.created_after, where.created_before, *after, limit + 1)
        items = [to_payment(row) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(items, time_id_cursor(items[-1].created_at, items[-1].id) if more else None)

    def add(self, payment: Payment) -> None:
        self._new.append(payment)

    def save(self, payment: Payment) -> None:
        if all(payment is not new for new in self._new):
            self._dirty[payment.id] = payment

    async def events(self, tenant_id: UUID, payment_id: UUID) -> builtins.list[PaymentEvent]:
        rows = await self._uow.fetch(EVENTS, tenant_id, payment_id)
        return [PaymentEvent(**{field: row[field] for field in _EVENT_FIELDS}) for row in rows]

    def flush(self) -> builtins.list[Fragment]:
        fragments: builtins.list[Fragment] = []
        if self._new:
            fragments.append(insert_rows("payments", COLUMNS, [[getattr(p, f) for f in _FIELDS] for p in self._new]))
        if any(not p.events for p in self._dirty.values()):
            raise ValueError("every change of a payment records an event (its version check)")
        fragments += [(UPDATE, [p.id, p.stored_version, p.status, p.provider_reference, p.refunded_amount,
                                p.failure_reason, p.version, p.attempts, p.next_attempt_at, p.updated_at,
                                p.completed_at]) for p in self._dirty.values()]
        events = [event for payment in [*self._new, *self._dirty.values()] for event in payment.events]
        if events:
            fragments.append(insert_rows("payment_events", EVENT_COLUMNS,
                                         [[getattr(e, f) for f in _EVENT_FIELDS] for e in events]))
        return fragments

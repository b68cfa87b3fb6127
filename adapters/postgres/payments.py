"""Payments and their event history in PostgreSQL."""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

import asyncpg

from adapters.postgres.rows import insert_rows
from core.payments import Payment, PaymentEvent

if TYPE_CHECKING:
    from adapters.postgres.rows import Fragment
    from adapters.postgres.uow import PgUnitOfWork

COLUMNS = (
    "id, tenant_id, payment_type, status, source_account_id, destination_account_id, amount, currency,"
    " provider, provider_reference, refunded_amount, failure_reason, description, metadata, version,"
    " correlation_id, created_at, updated_at, completed_at"
)

GET = f"SELECT {COLUMNS} FROM payments WHERE tenant_id = $1 AND id = $2"


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
        self._new: list[Payment] = []

    async def get(self, tenant_id: UUID, payment_id: UUID) -> Payment | None:
        row = await self._uow.fetchrow(GET, tenant_id, payment_id)
        return to_payment(row) if row else None

    def add(self, payment: Payment) -> None:
        self._new.append(payment)

    async def events(self, tenant_id: UUID, payment_id: UUID) -> list[PaymentEvent]:
        rows = await self._uow.fetch(EVENTS, tenant_id, payment_id)
        return [PaymentEvent(**{field: row[field] for field in _EVENT_FIELDS}) for row in rows]

    def flush(self) -> list[Fragment]:
        if not self._new:
            return []
        fragments = [insert_rows("payments", COLUMNS, [[getattr(p, f) for f in _FIELDS] for p in self._new])]
        events = [event for payment in self._new for event in payment.events]
        if events:
            fragments.append(insert_rows("payment_events", EVENT_COLUMNS,
                                         [[getattr(e, f) for f in _EVENT_FIELDS] for e in events]))
        return fragments

"""Payments and their event history in PostgreSQL: row locks, version-checked updates, filtered listing."""

from __future__ import annotations

import builtins
from uuid import UUID

from adapters.postgres.paging import time_id_page
from adapters.postgres.rows import Fragment, insert_entities, padded, reader
from adapters.postgres.session import PgSession
from adapters.postgres.table import Table
from core.payments import Payment, PaymentEvent
from core.ports import Page, PaymentFilter

COLUMNS = (
    "id, tenant_id, payment_type, status, source_account_id, destination_account_id, amount, currency,"
    " provider, provider_reference, refunded_amount, failure_code, failure_reason, description, metadata, version,"
    " attempts, next_attempt_at, correlation_id, created_at, updated_at, completed_at"
)

GET = f"SELECT {COLUMNS} FROM payments WHERE tenant_id = $1 AND id = $2"
LOCK = GET + " FOR UPDATE"
GET_ALL = f"SELECT {COLUMNS} FROM payments WHERE tenant_id = $1 AND id = ANY($2::uuid[])"
#: ORDER BY runs below FOR UPDATE: the rows are locked in ascending id order, as two groups must lock them.
LOCK_ALL = GET_ALL + " ORDER BY id FOR UPDATE"

LIST = f"""SELECT {COLUMNS} FROM payments
WHERE tenant_id = $1 AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR payment_type = $3)
  AND ($4::uuid IS NULL OR source_account_id = $4 OR destination_account_id = $4)
  AND ($5::text IS NULL OR provider = $5)
  AND ($6::timestamptz IS NULL OR created_at >= $6) AND ($7::timestamptz IS NULL OR created_at < $7)
  AND ($8::timestamptz IS NULL OR (created_at, id) < ($8, $9::uuid))
ORDER BY created_at DESC, id DESC LIMIT $10"""
#: With a metadata filter: the partial GIN index `payments_metadata` (migration 0014), whose predicate the
#: `<> '{}'` repeats so that the planner may use it; transfers without metadata never enter the index.
LIST_BY_METADATA = LIST.replace("\nORDER BY", "\n  AND metadata <> '{}'::jsonb AND metadata @> $11::jsonb\nORDER BY")

# The version check: the row is written only if nobody wrote it since it was read. Every change
# records an event whose sequence is the new version, so a lost race also collides on the
# (payment_id, sequence) key, which the unit of work reports as a ConcurrencyConflict.
# One statement a payment, by primary key: its plan probes the index whatever the table's size was when it was
# made (a join to `VALUES` or `unnest` hash-joins a scan of the table when planned while it was small, and keeps
# doing so as it grows: 25 ms to update 1 payment of 10,000, measured).
UPDATE = """UPDATE payments SET status = $3, provider_reference = $4, refunded_amount = $5, failure_reason = $6,
    version = $7, attempts = $8, next_attempt_at = $9, updated_at = $10, completed_at = $11, failure_code = $12
WHERE id = $1 AND version = $2"""
#: A padding statement: NULL matches no payment.
_NOTHING = [None] * 12

#: The SQL types of COLUMNS, for many rows written as one array per column.
TYPES = ("uuid", "uuid", "text", "text", "uuid", "uuid", "bigint", "text", "text", "text", "bigint", "text", "text",
         "text", "jsonb", "bigint", "bigint", "timestamptz", "text", "timestamptz", "timestamptz", "timestamptz")

EVENT_COLUMNS = "id, tenant_id, payment_id, sequence, type, data, correlation_id, created_at"
EVENT_TYPES = ("uuid", "uuid", "uuid", "bigint", "text", "jsonb", "text", "timestamptz")

# Closing an account (API.md §3) waits for what may still move its money: a payment from it in flight, or a
# refund of one still pending. Both go through the payments of the account (`payments_by_source`).
UNSETTLED = """SELECT EXISTS (SELECT 1 FROM payments WHERE tenant_id = $1 AND source_account_id = $2
                     AND status IN ('pending', 'processing'))
    OR EXISTS (SELECT 1 FROM payments p JOIN refunds r ON r.payment_id = p.id
               WHERE p.tenant_id = $1 AND p.source_account_id = $2 AND r.status = 'pending')"""

EVENTS = f"SELECT {EVENT_COLUMNS} FROM payment_events WHERE tenant_id = $1 AND payment_id = $2 ORDER BY sequence"


to_payment = reader(Payment, COLUMNS)
to_event = reader(PaymentEvent, EVENT_COLUMNS)


class PgPayments:
    """The `Payments` port on PostgreSQL; a payment's pending events are written with it."""

    def __init__(self, session: PgSession) -> None:
        self._session = session
        table = Table(session, to_payment, get=GET, lock=LOCK, get_all=GET_ALL, lock_all=LOCK_ALL)
        self._pending = table.pending
        self.get, self.lock, self.get_all, self.lock_all = table.get, table.lock, table.get_all, table.lock_all
        self.add, self.save = self._pending.add, self._pending.save  # buffered until commit

    async def list(self, tenant_id: UUID, where: PaymentFilter, *, limit: int, cursor: str | None) -> Page[Payment]:
        sql, tail = (LIST_BY_METADATA, (dict(where.metadata),)) if where.metadata else (LIST, ())
        return await time_id_page(self._session, sql, to_payment, tenant_id, where.status, where.payment_type,
                                  where.account_id, where.provider, where.created_after, where.created_before,
                                  limit=limit, cursor=cursor, tail=tail)

    async def unsettled_for(self, tenant_id: UUID, account_id: UUID) -> bool:
        row = await self._session.fetchrow(UNSETTLED, tenant_id, account_id)
        return bool(row is not None and row[0])

    async def events(self, tenant_id: UUID, payment_id: UUID) -> builtins.list[PaymentEvent]:
        return await self._session.read_all(EVENTS, to_event, tenant_id, payment_id)

    def flush(self) -> builtins.list[Fragment]:
        new, dirty = self._pending.new.values(), self._pending.dirty.values()
        if any(not p.events for p in dirty):
            raise ValueError("every change of a payment records an event (its version check)")
        updates: builtins.list[Fragment] = [
            (UPDATE, [p.id, p.stored_version, p.status, p.provider_reference, p.refunded_amount, p.failure_reason,
                      p.version, p.attempts, p.next_attempt_at, p.updated_at, p.completed_at, p.failure_code])
            for p in dirty]
        if updates:  # padded up to a power of two: a worker group's write is one of a handful of texts
            updates += [(UPDATE, _NOTHING)] * (padded(len(updates)) - len(updates))
        events = [event for payment in self._pending.changed() for event in payment.events]
        return [*insert_entities("payments", COLUMNS, new, types=TYPES), *updates,
                *insert_entities("payment_events", EVENT_COLUMNS, events, types=EVENT_TYPES)]

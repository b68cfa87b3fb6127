"""Refunds, dead letters and in-flight work in PostgreSQL."""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import asyncpg

from adapters.cursor import time_id_cursor, time_id_key
from adapters.postgres.pool import translate_errors
from adapters.postgres.rows import insert_rows, update_rows
from core.ports import Page
from core.refunds import Refund
from core.work import DeadLetter, WorkItem

if TYPE_CHECKING:
    from adapters.postgres.rows import Fragment
    from adapters.postgres.uow import PgUnitOfWork

COLUMNS = ("id, tenant_id, payment_id, amount, currency, status, reason, provider_reference, failure_reason,"
           " attempts, next_attempt_at, correlation_id, created_at, updated_at, completed_at")
_FIELDS = COLUMNS.replace(" ", "").split(",")

LOCK = f"SELECT {COLUMNS} FROM refunds WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
_OF_PAYMENT = f"SELECT {COLUMNS} FROM refunds WHERE tenant_id = $1 AND payment_id = $2"
FOR_PAYMENT = _OF_PAYMENT + " ORDER BY created_at DESC, id DESC"
LIST = f"""{_OF_PAYMENT} AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
ORDER BY created_at DESC, id DESC LIMIT $5"""

_UPDATED = (("id", "uuid"), ("status", "text"), ("provider_reference", "text"), ("failure_reason", "text"),
            ("attempts", "integer"), ("next_attempt_at", "timestamptz"), ("updated_at", "timestamptz"),
            ("completed_at", "timestamptz"))


def to_refund(row: asyncpg.Record) -> Refund:
    return Refund(**{field: row[field] for field in _FIELDS})


class PgRefunds:
    """The `Refunds` port on PostgreSQL."""

    def __init__(self, uow: PgUnitOfWork) -> None:
        self._uow = uow
        self._new: dict[UUID, Refund] = {}
        self._dirty: dict[UUID, Refund] = {}

    async def lock(self, tenant_id: UUID, refund_id: UUID) -> Refund | None:
        row = await self._uow.fetchrow(LOCK, tenant_id, refund_id)
        if row is None:
            return None
        return self._dirty.get(refund_id) or self._new.get(refund_id) or to_refund(row)

    async def for_payment(self, tenant_id: UUID, payment_id: UUID) -> builtins.list[Refund]:
        return [to_refund(row) for row in await self._uow.fetch(FOR_PAYMENT, tenant_id, payment_id)]

    async def list(self, tenant_id: UUID, payment_id: UUID, *, limit: int, cursor: str | None) -> Page[Refund]:
        after: builtins.list[Any] = [None, None] if cursor is None else builtins.list(time_id_key(cursor))
        rows = await self._uow.fetch(LIST, tenant_id, payment_id, *after, limit + 1)
        items = [to_refund(row) for row in rows[:limit]]
        return Page(items, time_id_cursor(items[-1].created_at, items[-1].id) if len(rows) > limit else None)

    def add(self, refund: Refund) -> None:
        self._new[refund.id] = refund

    def save(self, refund: Refund) -> None:
        if refund.id not in self._new:
            self._dirty[refund.id] = refund

    def flush(self) -> builtins.list[Fragment]:
        fragments: builtins.list[Fragment] = []
        if self._new:
            fragments.append(insert_rows("refunds", COLUMNS, [[getattr(r, f) for f in _FIELDS]
                                                              for r in self._new.values()]))
        if self._dirty:
            fragments.append(update_rows("refunds", _UPDATED, [[getattr(r, name) for name, _ in _UPDATED]
                                                              for r in self._dirty.values()]))
        return fragments


LETTER_COLUMNS = "id, tenant_id, kind, target_id, error, attempts, correlation_id, created_at, retried_at"
_LETTER_FIELDS = LETTER_COLUMNS.replace(" ", "").split(",")
LETTERS = f"SELECT {LETTER_COLUMNS} FROM dead_letters ORDER BY created_at DESC, id DESC LIMIT $1"
LETTER = f"SELECT {LETTER_COLUMNS} FROM dead_letters WHERE id = $1 FOR UPDATE"
RETRIED = "UPDATE dead_letters SET retried_at = now() WHERE id = $1"


class PgDeadLetters:
    """The `DeadLetters` port on PostgreSQL."""

    def __init__(self, uow: PgUnitOfWork) -> None:
        self._uow = uow
        self._new: builtins.list[DeadLetter] = []
        self._retried: builtins.list[DeadLetter] = []

    def add(self, letter: DeadLetter) -> None:
        self._new.append(letter)

    async def list(self, *, limit: int) -> builtins.list[DeadLetter]:
        return [DeadLetter(**{f: row[f] for f in _LETTER_FIELDS}) for row in await self._uow.fetch(LETTERS, limit)]

    async def get(self, letter_id: UUID) -> DeadLetter | None:
        row = await self._uow.fetchrow(LETTER, letter_id)
        return DeadLetter(**{f: row[f] for f in _LETTER_FIELDS}) if row else None

    def mark_retried(self, letter: DeadLetter) -> None:
        self._retried.append(letter)

    def flush(self) -> builtins.list[Fragment]:
        fragments: builtins.list[Fragment] = []
        if self._new:
            fragments.append(insert_rows("dead_letters", LETTER_COLUMNS,
                                         [[getattr(x, f) for f in _LETTER_FIELDS] for x in self._new]))
        fragments += [(RETRIED, [x.id]) for x in self._retried]
        return fragments


# Work already in the dead letter queue (and not re-driven since) waits for an operator, not for this.
STUCK = """(SELECT 'payment' AS kind, tenant_id, id, correlation_id, coalesce(next_attempt_at, updated_at) AS since
  FROM payments p WHERE status IN ('pending', 'processing') AND payment_type = 'external_payment'
   AND updated_at < $1 AND coalesce(next_attempt_at, updated_at) < $1
   AND NOT EXISTS (SELECT 1 FROM dead_letters d WHERE d.target_id = p.id AND d.retried_at IS NULL)
  ORDER BY updated_at LIMIT $2)
UNION ALL
(SELECT 'refund', tenant_id, id, correlation_id, coalesce(next_attempt_at, updated_at)
  FROM refunds r WHERE status = 'pending' AND updated_at < $1 AND coalesce(next_attempt_at, updated_at) < $1
   AND NOT EXISTS (SELECT 1 FROM dead_letters d WHERE d.target_id = r.id AND d.retried_at IS NULL)
  ORDER BY updated_at LIMIT $2)"""


class PgInFlight:
    """The `InFlight` port on PostgreSQL (indexes `payments_in_flight` and `refunds_pending`)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def stuck(self, before: datetime, limit: int) -> builtins.list[WorkItem]:
        with translate_errors():
            rows = await self._pool.fetch(STUCK, before, limit)
        return [WorkItem(kind=r["kind"], tenant_id=r["tenant_id"], target_id=r["id"],
                         correlation_id=r["correlation_id"]) for r in rows]

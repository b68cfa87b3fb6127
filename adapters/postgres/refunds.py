"""Refunds in PostgreSQL: row locks, buffered inserts and updates, newest-first listing."""

from __future__ import annotations

import builtins
from uuid import UUID

from adapters.postgres.paging import time_id_page
from adapters.postgres.rows import Fragment, reader, write_pending
from adapters.postgres.session import PgSession
from adapters.postgres.table import Table
from core.ports import Page
from core.refunds import Refund

COLUMNS = ("id, tenant_id, payment_id, amount, currency, status, reason, provider_reference, failure_reason,"
           " attempts, next_attempt_at, correlation_id, created_at, updated_at, completed_at")

LOCK = f"SELECT {COLUMNS} FROM refunds WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
_OF_PAYMENT = f"SELECT {COLUMNS} FROM refunds WHERE tenant_id = $1 AND payment_id = $2"
FOR_PAYMENT = _OF_PAYMENT + " ORDER BY created_at DESC, id DESC"
LIST = f"""{_OF_PAYMENT} AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
ORDER BY created_at DESC, id DESC LIMIT $5"""

_UPDATED = (("id", "uuid"), ("status", "text"), ("provider_reference", "text"), ("failure_reason", "text"),
            ("attempts", "integer"), ("next_attempt_at", "timestamptz"), ("updated_at", "timestamptz"),
            ("completed_at", "timestamptz"))


to_refund = reader(Refund, COLUMNS)


class PgRefunds:
    """The `Refunds` port on PostgreSQL."""

    def __init__(self, session: PgSession) -> None:
        self._session = session
        table = Table(session, to_refund, lock=LOCK)
        self._pending = table.pending
        self.lock = table.lock
        self.add, self.save = self._pending.add, self._pending.save  # buffered until commit

    async def for_payment(self, tenant_id: UUID, payment_id: UUID) -> builtins.list[Refund]:
        return await self._session.read_all(FOR_PAYMENT, to_refund, tenant_id, payment_id)

    async def list(self, tenant_id: UUID, payment_id: UUID, *, limit: int, cursor: str | None) -> Page[Refund]:
        return await time_id_page(self._session, LIST, to_refund, tenant_id, payment_id, limit=limit, cursor=cursor)

    def flush(self) -> builtins.list[Fragment]:
        return write_pending("refunds", COLUMNS, _UPDATED, self._pending)

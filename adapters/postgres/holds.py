"""Holds in PostgreSQL: buffered inserts and updates, newest-first listing, due holds through their index."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from datetime import datetime
from uuid import UUID

from adapters.pending import Pending
from adapters.postgres.paging import time_id_page
from adapters.postgres.rows import Fragment, reader, write_pending
from adapters.postgres.session import PgSession
from core.holds import Hold, HoldStatus
from core.ports import Page

COLUMNS = ("id, tenant_id, source_account_id, destination_account_id, amount, currency, status, captured_amount,"
           " payment_id, expires_at, description, metadata, correlation_id, created_at, updated_at")

GET = f"SELECT {COLUMNS} FROM holds WHERE tenant_id = $1 AND id = $2"
# `status` as of $4 (API.md §9): an active hold past its expiry is listed as expired, written or not.
LIST = f"""SELECT {COLUMNS} FROM holds
WHERE tenant_id = $1 AND ($2::uuid IS NULL OR source_account_id = $2 OR destination_account_id = $2)
  AND ($3::text IS NULL OR (CASE WHEN status = 'active' AND expires_at <= $4 THEN 'expired' ELSE status END) = $3)
  AND ($5::timestamptz IS NULL OR (created_at, id) < ($5, $6::uuid))
ORDER BY created_at DESC, id DESC LIMIT $7"""
LIST_BY_METADATA = LIST.replace("\nORDER BY", "\n  AND metadata <> '{}'::jsonb AND metadata @> $8::jsonb\nORDER BY")
DUE = f"""SELECT {COLUMNS} FROM holds
WHERE tenant_id = $1 AND source_account_id = $2 AND status = 'active' AND expires_at <= $3 ORDER BY expires_at, id"""
EXPIRING = """SELECT tenant_id, source_account_id FROM holds WHERE status = 'active' AND expires_at <= $1
ORDER BY expires_at LIMIT $2"""

_UPDATED = (("id", "uuid"), ("status", "text"), ("captured_amount", "bigint"), ("payment_id", "uuid"),
            ("updated_at", "timestamptz"))

to_hold = reader(Hold, COLUMNS)


class PgHolds:
    """The `Holds` port on PostgreSQL."""

    def __init__(self, session: PgSession) -> None:
        self._session = session
        self._pending = Pending[Hold]()
        self.add, self.save = self._pending.add, self._pending.save  # buffered until commit

    async def get(self, tenant_id: UUID, hold_id: UUID) -> Hold | None:
        return self._pending.current(await self._session.read_one(GET, to_hold, tenant_id, hold_id))

    async def list(
        self, tenant_id: UUID, *, account_id: UUID | None, status: HoldStatus | None,
        metadata: Mapping[str, str] | None, now: datetime, limit: int, cursor: str | None,
    ) -> Page[Hold]:
        sql, tail = (LIST_BY_METADATA, (dict(metadata),)) if metadata else (LIST, ())
        return await time_id_page(self._session, sql, to_hold, tenant_id, account_id, status, now, limit=limit,
                                  cursor=cursor, tail=tail)

    async def due(self, tenant_id: UUID, account_id: UUID, now: datetime) -> builtins.list[Hold]:
        # As this unit of work sees them: a hold it expired already (an earlier transfer of a group) is not due.
        rows = await self._session.read_all(DUE, to_hold, tenant_id, account_id, now)
        return [hold for hold in map(self._pending.current, rows) if hold.is_due(now)]

    async def expiring(self, now: datetime, limit: int) -> builtins.list[tuple[UUID, UUID]]:
        return [(row["tenant_id"], row["source_account_id"]) for row in await self._session.fetch(EXPIRING, now, limit)]

    def flush(self) -> builtins.list[Fragment]:
        return write_pending("holds", COLUMNS, _UPDATED, self._pending)

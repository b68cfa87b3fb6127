"""The events feed on PostgreSQL: outbox rows in (xid, id) order, served only below the oldest running transaction.

An id or a sequence taken when a row is inserted is not commit order: a transaction that took 10 may commit after
one that took 11, and a reader already past 11 would never see 10. Each row carries the id of the transaction that
wrote it (`xid`, filled by `pg_current_xact_id()`), and a read serves only rows whose xid is below the oldest
transaction still running: every transaction below it has ended and every later one gets a larger xid, so the rows
in front of it are final (on a streaming replica too: see HORIZON). Rows of one transaction follow each other in id
order (UUIDv7, made in the order they were added). The reads run outside any writing transaction (read-only units
of work), so none sees its own rows.
"""

from __future__ import annotations

from collections.abc import Collection
from uuid import UUID

import asyncpg

from adapters.postgres.outbox import COLUMNS
from adapters.postgres.session import PgSession
from core.errors import UnknownEvent
from core.events import OutboxMessage
from core.ports import Page

GET = f"SELECT {COLUMNS} FROM outbox WHERE tenant_id = $1 AND id = $2"

POSITION = "SELECT xid FROM outbox WHERE tenant_id = $1 AND id = $2"

# The horizon: the oldest transaction of this database still running when the statement's snapshot was taken
# (pg_current_snapshot() is the statement's own: what it sees and its horizon agree), or the snapshot's xmax when
# none is. Transaction ids are server-wide, so the snapshot lists other databases' transactions too; they cannot
# write this outbox, and a long one there must not hold the feed back. A transaction not found in pg_stat_activity
# (ended since, prepared, or hidden from this role) is kept: the horizon only ever errs early.
# On a streaming replica (PAYMENTS_DATABASE_READ_URL) a snapshot lists no running transaction (the primary's are
# kept apart, and pg_snapshot_xip() is empty there), so taking its xmax would serve rows of a transaction that
# committed past one still running on the primary, which the reader would then skip. Its xmin is the oldest
# transaction the replay has seen start and not end (of any database: pg_stat_activity there shows only the
# replica's own sessions), so below it every row is final on the replica too.
HORIZON = """(SELECT CASE WHEN pg_is_in_recovery() THEN pg_snapshot_xmin(pg_current_snapshot()) ELSE
  (SELECT coalesce(min(x), pg_snapshot_xmax(pg_current_snapshot()))
     FROM pg_snapshot_xip(pg_current_snapshot()) AS x
    WHERE x::xid NOT IN (SELECT backend_xid FROM pg_stat_activity
                          WHERE backend_xid IS NOT NULL
                            AND datid <> (SELECT oid FROM pg_database WHERE datname = current_database()))) END)"""

PAGE = f"""SELECT {COLUMNS} FROM outbox
WHERE tenant_id = $1 AND (xid, id) > ($2::xid8, $3::uuid) AND xid < {HORIZON}
  AND topic = ANY($4::text[])
ORDER BY xid, id LIMIT $5"""

#: In front of every row: rows written before the feed existed have xid 0, and no UUID is below the nil one.
_START = (0, UUID(int=0))


def to_message(row: asyncpg.Record) -> OutboxMessage:
    return OutboxMessage(**dict(row))


class PgEvents:
    """The `Events` port on PostgreSQL (the outbox table)."""

    def __init__(self, session: PgSession) -> None:
        self._session = session

    async def get(self, tenant_id: UUID, event_id: UUID) -> OutboxMessage | None:
        return await self._session.read_one(GET, to_message, tenant_id, event_id)

    async def page(
        self, tenant_id: UUID, *, after: UUID | None, types: Collection[str], limit: int
    ) -> Page[OutboxMessage]:
        start = _START
        if after is not None:
            xid = await self._session.read_one(POSITION, lambda row: int(row["xid"]), tenant_id, after)
            if xid is None:
                raise UnknownEvent("after")
            start = (xid, after)
        rows = await self._session.read_all(PAGE, to_message, tenant_id, *start, list(types), limit + 1)
        items = rows[:limit]
        return Page(items, str(items[-1].id) if len(rows) > limit else None)

"""The outbox feed on PostgreSQL: unpublished messages claimed in SKIP LOCKED batches."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from adapters.postgres.outbox import COLUMNS
from adapters.postgres.pool import translate_errors
from core.events import ClaimedBatch, OutboxMessage

# Rows another relay holds are skipped, not waited for; a crashed relay's rows unlock with its connection.
CLAIM = f"""SELECT {COLUMNS} FROM outbox
WHERE published_at IS NULL ORDER BY created_at, id LIMIT $1 FOR UPDATE SKIP LOCKED"""

MARK = "UPDATE outbox SET published_at = now(), attempts = attempts + 1 WHERE id = ANY($1::uuid[])"


class PgOutboxFeed:
    """The `OutboxFeed` port on PostgreSQL."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def claim(self, limit: int) -> AsyncIterator[ClaimedBatch]:
        with translate_errors():
            async with self._pool.acquire() as conn, conn.transaction():
                rows = await conn.fetch(CLAIM, limit)
                claim = ClaimedBatch([OutboxMessage(**dict(row)) for row in rows])
                yield claim
                if claim.published and claim.messages:
                    await conn.execute(MARK, [m.id for m in claim.messages])

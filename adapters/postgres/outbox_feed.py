"""The outbox feed on PostgreSQL: unpublished messages claimed in SKIP LOCKED batches."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from uuid import UUID

import asyncpg

from adapters.postgres.outbox import COLUMNS
from adapters.postgres.pool import translate_errors
from core.events import ClaimedBatch, OutboxMessage

# Rows another relay holds are skipped, not waited for; a crashed relay's rows unlock with its connection. The claim
# marks them published at once, in its transaction, which commits only once the caller has published them (a
# failure rolls the mark back): BEGIN, this statement, COMMIT. `now()` is the transaction's start, as before.
# (`= ANY(ARRAY(...))`: the subquery runs once, as a queue's claim must; `IN (...)` may be planned as a join.)
CLAIM = f"""UPDATE outbox SET published_at = now(), attempts = attempts + 1
WHERE id = ANY(ARRAY(SELECT id FROM outbox WHERE published_at IS NULL ORDER BY created_at, id LIMIT $1
                     FOR UPDATE SKIP LOCKED))
RETURNING {COLUMNS}"""


class PgOutboxFeed:
    """The `OutboxFeed` port on PostgreSQL."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def claim(self, limit: int) -> AsyncIterator[ClaimedBatch]:
        with translate_errors():
            async with self._pool.acquire() as conn:
                transaction = conn.transaction()
                await transaction.start()
                try:
                    rows = await conn.fetch(CLAIM, limit)
                    messages = sorted((OutboxMessage(**dict(row)) for row in rows), key=_in_order)
                    claim = ClaimedBatch(messages)
                    yield claim
                except BaseException:
                    # a connection lost mid-claim may refuse the rollback: the pool's reset then drops it
                    with contextlib.suppress(asyncpg.InterfaceError, asyncpg.PostgresError, OSError):
                        await transaction.rollback()
                    raise
                if claim.published or not claim.messages:
                    await transaction.commit()
                else:  # not published after all: the rows stay unpublished, for the next claim
                    await transaction.rollback()


def _in_order(message: OutboxMessage) -> tuple[datetime, UUID]:
    """The order they were written in (RETURNING keeps none)."""
    return message.created_at, message.id

"""The outbox feed on PostgreSQL: unpublished messages claimed in batches under a lease."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from uuid import UUID

import asyncpg
from loguru import logger

from adapters.postgres.outbox import COLUMNS
from adapters.postgres.pool import translate_errors
from core.events import ClaimedBatch, OutboxMessage

#: How long a claim keeps its rows from other relays. Publishing a batch takes milliseconds (a few seconds at worst,
#: through a Redis failover), so a lease runs out only when its relay died; a relay merely slower than that
#: publishes its rows a second time, which consumers tolerate (at least once).
CLAIM_LEASE = timedelta(seconds=10)

# One statement, in a transaction of its own: rows another relay is claiming right now are skipped, not waited for,
# and rows it has claimed wait for its lease. RETURNING does not keep the subquery's order: the feed sorts them.
CLAIM = f"""UPDATE outbox SET claimed_until = now() + $2::interval
WHERE id IN (SELECT id FROM outbox WHERE published_at IS NULL AND (claimed_until IS NULL OR claimed_until <= now())
             ORDER BY created_at, id LIMIT $1 FOR UPDATE SKIP LOCKED)
RETURNING {COLUMNS}"""

MARK = "UPDATE outbox SET published_at = now(), attempts = attempts + 1 WHERE id = ANY($1::uuid[])"
RELEASE = "UPDATE outbox SET claimed_until = NULL WHERE id = ANY($1::uuid[]) AND published_at IS NULL"


class PgOutboxFeed:
    """The `OutboxFeed` port on PostgreSQL: a claim and its mark are a statement each, with no transaction open
    between them (a claim that finds nothing is one round trip)."""

    def __init__(self, pool: asyncpg.Pool, *, lease: timedelta = CLAIM_LEASE) -> None:
        self._pool, self._lease = pool, lease

    @asynccontextmanager
    async def claim(self, limit: int) -> AsyncIterator[ClaimedBatch]:
        with translate_errors():
            rows = await self._pool.fetch(CLAIM, limit, self._lease)
        claim = ClaimedBatch(sorted((OutboxMessage(**dict(row)) for row in rows), key=lambda m: (m.created_at, m.id)))
        ids = [m.id for m in claim.messages]
        try:
            yield claim
        except BaseException:
            if ids:
                await self._give_back(ids)
            raise
        if ids:
            with translate_errors():
                await self._pool.execute(MARK if claim.published else RELEASE, ids)

    async def _give_back(self, ids: Sequence[UUID]) -> None:
        """After a failed publish: the rows at once to the next claim, or, if even that fails, when the lease ends."""
        with contextlib.suppress(Exception):
            await self._pool.execute(RELEASE, ids)
            return
        logger.warning("{} outbox rows stay claimed until their lease ends ({}s)", len(ids),
                       self._lease.total_seconds())

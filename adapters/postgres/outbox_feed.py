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
from core.events import ClaimedBatch, Listener, OutboxMessage

# Rows another relay holds are skipped, not waited for; a crashed relay's rows unlock with its connection. The claim
# marks them published at once, in its transaction, which commits only once the caller has published them (a
# failure rolls the mark back): BEGIN, this statement, COMMIT. `now()` is the transaction's start, as before.
# (`= ANY(ARRAY(...))`: the subquery runs once, as a queue's claim must; `IN (...)` may be planned as a join.)
CLAIM = f"""UPDATE outbox SET published_at = now(), attempts = attempts + 1
WHERE id = ANY(ARRAY(SELECT id FROM outbox WHERE published_at IS NULL ORDER BY created_at, id LIMIT $1
                     FOR UPDATE SKIP LOCKED))
RETURNING {COLUMNS}"""
# The claim and the enabled webhook subscriptions of its messages' tenants, in one statement (a subscription committed
# before a claimed event is in the snapshot that sees the event): a subscription's row has no topic.
CLAIM_HEARD = f"""WITH claimed AS ({CLAIM})
SELECT {COLUMNS}, NULL::text[] AS events FROM claimed
UNION ALL
SELECT id, tenant_id, NULL, NULL, NULL, NULL, NULL, NULL, events FROM webhook_subscriptions
WHERE enabled AND tenant_id IN (SELECT tenant_id FROM claimed)"""


class PgOutboxFeed:
    """The `OutboxFeed` port on PostgreSQL."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def claim(self, limit: int, *, listeners: bool = False) -> AsyncIterator[ClaimedBatch]:
        with translate_errors():
            async with self._pool.acquire() as conn:
                transaction = conn.transaction()
                await transaction.start()
                try:
                    claim = _claimed(await conn.fetch(CLAIM_HEARD if listeners else CLAIM, limit), listeners)
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


def _claimed(rows: list[asyncpg.Record], listeners: bool) -> ClaimedBatch:
    if not listeners:
        return ClaimedBatch(sorted((OutboxMessage(**dict(row)) for row in rows), key=_in_order))
    messages, heard = [], []
    for row in rows:
        if row["topic"] is None:
            heard.append(Listener(id=row["id"], tenant_id=row["tenant_id"], events=tuple(row["events"])))
        else:
            messages.append(OutboxMessage(**{key: value for key, value in row.items() if key != "events"}))
    return ClaimedBatch(sorted(messages, key=_in_order), listeners=sorted(heard, key=lambda s: s.id))


def _in_order(message: OutboxMessage) -> tuple[datetime, UUID]:
    """The order they were written in (RETURNING keeps none)."""
    return message.created_at, message.id

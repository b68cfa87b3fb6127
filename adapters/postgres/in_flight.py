"""Unfinished payments and refunds in PostgreSQL, for the housekeeping job that re-enqueues stuck work."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from adapters.postgres.pool import translate_errors
from core.work import WorkItem

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

    async def stuck(self, before: datetime, limit: int) -> list[WorkItem]:
        with translate_errors():
            rows = await self._pool.fetch(STUCK, before, limit)
        return [WorkItem(kind=r["kind"], tenant_id=r["tenant_id"], target_id=r["id"],
                         correlation_id=r["correlation_id"]) for r in rows]

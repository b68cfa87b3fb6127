"""Fenced singleton leases on PostgreSQL (`distributed_locks`), and the housekeeping deletes they guard."""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from adapters.postgres.pool import translate_errors

# Take the lease if it is free or expired, or renew it if it is ours. A new holder
# gets a larger fencing token; a renewal keeps the token.
ACQUIRE = """INSERT INTO distributed_locks AS l (name, owner, fencing_token, acquired_at, expires_at)
VALUES ($1, $2, 1, now(), now() + $3::interval)
ON CONFLICT (name) DO UPDATE SET
    fencing_token = CASE WHEN l.owner = EXCLUDED.owner THEN l.fencing_token ELSE l.fencing_token + 1 END,
    acquired_at = CASE WHEN l.owner = EXCLUDED.owner THEN l.acquired_at ELSE now() END,
    owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
WHERE l.owner = EXCLUDED.owner OR l.expires_at < now()
RETURNING fencing_token"""

# The delete only happens while the lease is still ours with the same token (fencing).
REAP = """DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM idempotency_keys WHERE expires_at <= now() LIMIT $4))
  AND EXISTS (SELECT 1 FROM distributed_locks
              WHERE name = $1 AND owner = $2 AND fencing_token = $3 AND expires_at > now())"""


PURGE_OUTBOX = """DELETE FROM outbox WHERE id = ANY(ARRAY(
    SELECT id FROM outbox WHERE published_at < $4 LIMIT $5))
  AND EXISTS (SELECT 1 FROM distributed_locks
              WHERE name = $1 AND owner = $2 AND fencing_token = $3 AND expires_at > now())"""


class PgLease:
    """The `Lease` port on PostgreSQL (`distributed_locks`)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def acquire(self, name: str, owner: str, ttl_seconds: float) -> int | None:
        with translate_errors():
            token: int | None = await self._pool.fetchval(ACQUIRE, name, owner, timedelta(seconds=ttl_seconds))
        return token

    async def reap_idempotency_keys(self, name: str, owner: str, token: int, limit: int) -> int:
        return await self._delete(REAP, name, owner, token, limit)

    async def purge_published_outbox(self, name: str, owner: str, token: int, before: datetime, limit: int) -> int:
        return await self._delete(PURGE_OUTBOX, name, owner, token, before, limit)

    async def _delete(self, sql: str, *args: object) -> int:
        with translate_errors():
            status: str = await self._pool.execute(sql, *args)
        return int(status.rsplit(maxsplit=1)[-1])

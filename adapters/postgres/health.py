"""Readiness probes of PostgreSQL: the server answers, and every migration the release ships
(`adapters/postgres/migrations/`) is applied."""

from __future__ import annotations

import asyncpg

from adapters.postgres.migrate import migration_ids

PING = "SELECT 1"
APPLIED = "SELECT migration_id FROM _yoyo_migration"


async def ping_database(pool: asyncpg.Pool) -> None:
    """Raise the driver's error if no connection answers a trivial query."""
    await pool.fetchval(PING)


async def check_migrations(pool: asyncpg.Pool) -> None:
    """Raise `RuntimeError` naming the migrations of this release the database does not have yet (`NoMigrations`,
    one too, if the installation has none)."""
    applied = {row[0] for row in await pool.fetch(APPLIED)}
    missing = [name for name in migration_ids() if name not in applied]
    if missing:
        raise RuntimeError(f"pending migrations: {', '.join(missing)}")

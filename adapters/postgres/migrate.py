"""Apply the yoyo migrations in `migrations/` (yoyo's sync connection needs psycopg 3)."""

from __future__ import annotations

from pathlib import Path

from yoyo import get_backend, read_migrations

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def yoyo_url(dsn: str) -> str:
    """yoyo wants `postgresql+psycopg://` to pick the psycopg 3 driver."""
    for scheme in ("postgresql://", "postgres://"):
        if dsn.startswith(scheme):
            return "postgresql+psycopg://" + dsn[len(scheme):]
    return dsn


def apply_migrations(dsn: str) -> list[str]:
    """Apply every pending migration under yoyo's lock; return the ids applied."""
    backend = get_backend(yoyo_url(dsn))
    migrations = read_migrations(str(MIGRATIONS))
    with backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
    return [m.id for m in pending]


def pending_migrations(dsn: str) -> list[str]:
    """Ids of migrations not yet applied (readiness reports `migrations` not ok while any are)."""
    backend = get_backend(yoyo_url(dsn))
    return [m.id for m in backend.to_apply(read_migrations(str(MIGRATIONS)))]

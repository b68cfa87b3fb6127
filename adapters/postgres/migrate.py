"""Apply the yoyo migrations shipped in `adapters/postgres/migrations/` (yoyo's sync connection needs psycopg 3).

The SQL files are package data of `adapters.postgres`, found through `importlib.resources`, so that an installed
wheel carries them as well as a checkout does. Finding none is an error, never "nothing to apply".
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from yoyo import get_backend, read_migrations

#: The release's migrations: a directory inside the installed package (a `pathlib.Path` for any ordinary install).
MIGRATIONS: Traversable = resources.files("adapters.postgres") / "migrations"


class NoMigrations(RuntimeError):
    """The migrations directory holds no migration: a broken install (the SQL files were left out of it)."""


def yoyo_url(dsn: str) -> str:
    """yoyo wants `postgresql+psycopg://` to pick the psycopg 3 driver."""
    for scheme in ("postgresql://", "postgres://"):
        if dsn.startswith(scheme):
            return "postgresql+psycopg://" + dsn[len(scheme):]
    return dsn


def migration_ids(source: Traversable = MIGRATIONS) -> list[str]:
    """The ids (file names without `.sql`) of the release's migrations, in order; `NoMigrations` if there are none."""
    ids = sorted(item.name.removesuffix(".sql") for item in _sql_files(source))
    if not ids:
        raise NoMigrations(_none_found(source))
    return ids


def apply_migrations(dsn: str, *, source: Traversable = MIGRATIONS) -> list[str]:
    """Apply every pending migration under yoyo's lock; return the ids applied."""
    with _read(source) as migrations:
        backend = get_backend(yoyo_url(dsn))
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
    return [m.id for m in pending]


def pending_migrations(dsn: str, *, source: Traversable = MIGRATIONS) -> list[str]:
    """Ids of migrations not yet applied (readiness reports `migrations` not ok while any are)."""
    with _read(source) as migrations:
        return [m.id for m in get_backend(yoyo_url(dsn)).to_apply(migrations)]


def _sql_files(source: Traversable) -> list[Traversable]:
    if not source.is_dir():
        return []
    return [item for item in source.iterdir() if item.is_file() and item.name.endswith(".sql")]


def _none_found(source: Traversable) -> str:
    return (f"no migrations found in {source}: this installation of payments is incomplete "
            "(reinstall it; a wheel must carry adapters/postgres/migrations/*.sql)")


@contextlib.contextmanager
def _read(source: Traversable) -> Iterator[Any]:
    """yoyo's `MigrationList` of `source`, read from a directory on disk that lasts while it is used (yoyo loads
    each file's SQL only when it applies it). An ordinary install is that directory already; anything else (a
    zipped install) is copied to a temporary one first: `importlib.resources.as_file` takes directories only from
    Python 3.12 on."""
    files = _sql_files(source)
    if not files:
        raise NoMigrations(_none_found(source))
    with contextlib.ExitStack() as stack:
        if isinstance(source, Path):
            directory = source
        else:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="payments-migrations-")))
            for item in files:
                (directory / item.name).write_bytes(item.read_bytes())
        migrations = read_migrations(str(directory))
        if not migrations:  # e.g. files yoyo does not take for migrations
            raise NoMigrations(_none_found(source))
        yield migrations

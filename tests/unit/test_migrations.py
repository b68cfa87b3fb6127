"""Where the migrations are found (package data of `adapters.postgres`, through importlib.resources), that finding
none is an error rather than "0 applied", and that a missing `embedded` extra is named in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.postgres.migrate import MIGRATIONS, NoMigrations, apply_migrations, migration_ids, pending_migrations
from app.bootstrap import EmbeddedUnavailable, require_embedded

ROOT = Path(__file__).resolve().parents[2]
#: Nothing listens here: a migration run that got as far as connecting would fail with another error.
NOWHERE = "postgresql://nobody@127.0.0.1:1/nothing"


def test_the_migrations_ship_inside_the_adapters_postgres_package() -> None:
    assert isinstance(MIGRATIONS, Path) and MIGRATIONS == ROOT / "adapters" / "postgres" / "migrations"
    files = sorted(path.stem for path in MIGRATIONS.glob("*.sql"))
    assert files and migration_ids() == files
    assert files[0] == "0001_schema"
    assert not list(ROOT.glob("migrations/*.sql")), "the migrations live in adapters/postgres/migrations/"


@pytest.mark.parametrize("layout", ["empty", "missing", "no sql"])
def test_no_migration_found_is_an_error_before_any_connection(tmp_path: Path, layout: str) -> None:
    source = tmp_path / "migrations"
    if layout != "missing":
        source.mkdir()
    if layout == "no sql":
        (source / "README.txt").write_text("not a migration")
        (source / "0001_schema.sql.orig").write_text("SELECT 1;")
    for run in (lambda: apply_migrations(NOWHERE, source=source), lambda: pending_migrations(NOWHERE, source=source),
                lambda: migration_ids(source)):
        with pytest.raises(NoMigrations) as raised:
            run()
        message = str(raised.value)
        assert str(source) in message and "no migrations found" in message and "\n" not in message


def test_a_missing_embedded_extra_is_named_in_one_line() -> None:
    require_embedded(("json",))  # present: nothing to say
    with pytest.raises(EmbeddedUnavailable) as raised:
        require_embedded(("json", "payments_no_such_module"))
    message = str(raised.value)
    assert "payments_no_such_module missing" in message and "json" not in message
    assert "pip install 'payments[embedded]'" in message and "PAYMENTS_DATABASE_URL" in message
    assert "\n" not in message

"""Tamper-evident entries on real PostgreSQL: the SQL hash (migrations 0010, 0017) equals core.hash_chain's, 0010's
backfill of entries written before it, carried into bytes by 0017, equals what the application would have
written, and `payments ledger check` exits 1 naming the entry when a stored row is edited, deleted or moved
directly in PostgreSQL.

The tampering runs as a superuser could run it: entries are append-only (a trigger refuses UPDATE and DELETE),
and `session_replication_role = replica` is what switches triggers off for one session."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID, uuid4

import asyncpg
import psycopg
import pytest
from yoyo import get_backend, read_migrations

from adapters.postgres.migrate import MIGRATIONS, apply_migrations, yoyo_url
from app.bootstrap import Services, bootstrap
from app.configuration import load_settings
from core.accounts import FUNDING, USER, Account
from core.clock import SystemClock
from core.hash_chain import GENESIS, entry_hash
from core.ids import new_id
from core.ledger import Entry, post
from tests.conftest import ROOT, SECRETS_KEYS, fresh_database
from tests.contract.conftest import new_tenant, open_account, transfer
from tests.unit.test_hash_chain import VECTORS

pytestmark = pytest.mark.timeout(120)

ZONES = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
SQL_HASH = "SELECT ledger_entry_hash($1, $2, $3, $4, $5, $6, $7, $8, $9)"


async def test_the_sql_hash_is_the_python_hash(services: Services) -> None:
    """The fixed vectors, then random fields: ids, a payment or none, amounts up to ±2^62, instants with
    microseconds across four centuries in several zones."""
    cases = [dict(fields) for fields, _, _ in VECTORS]
    rng = random.Random(14)
    for _ in range(300):
        at = datetime(1900, 1, 1, tzinfo=UTC) + timedelta(microseconds=rng.randrange(400 * 366 * 86_400 * 10**6))
        cases.append(dict(
            previous=rng.choice([GENESIS, os.urandom(32)]), id=uuid4(), account_id=uuid4(),
            payment_id=rng.choice([None, uuid4()]), type=rng.choice(["debit", "credit"]),
            amount=rng.randrange(-(2**62), 2**62) or 1, balance_after=rng.randrange(-(2**62), 2**62),
            currency=rng.choice(["USD", "JPY", "KWD"]), created_at=at.astimezone(rng.choice(ZONES))))
    assert any(c["created_at"].year > 2100 for c in cases) and any(c["payment_id"] is None for c in cases)
    for case in cases:
        previous = case.pop("previous")
        expected = entry_hash(previous, **case)
        assert await services.pool.fetchval(SQL_HASH, previous, *case.values()) == expected, case
    for fields, _, digest in VECTORS:
        assert await services.pool.fetchval(SQL_HASH, *fields.values()) == bytes.fromhex(digest)


def _before_0010(url: str) -> None:
    backend = get_backend(yoyo_url(url))
    with backend.lock():
        backend.apply_migrations(backend.to_apply(read_migrations(str(MIGRATIONS)).filter(lambda m: m.id < "0010")))


async def test_migration_0010_backfills_what_the_application_would_have_written(
    admin_database_url: str, redis_url: str
) -> None:
    """Rows as the release before 0010 wrote them (no hash): after the migration each entry's hash and each
    account's last_entry_hash are what core computed for the same postings, the audit is clean, and a new
    transfer chains on."""
    now = datetime(2025, 6, 7, 8, 9, 10, 123456, tzinfo=UTC)
    tenant = uuid4()
    usd = {kind: Account(id=new_id(), tenant_id=tenant, kind=kind, currency="USD",
                         user_id="legacy" if kind == USER else None, created_at=now, updated_at=now)
           for kind in (FUNDING, USER)}
    bob = Account(id=new_id(), tenant_id=tenant, kind=USER, currency="USD", user_id="bob", created_at=now,
                  updated_at=now)
    jpy = [Account(id=new_id(), tenant_id=tenant, kind=kind, currency="JPY", user_id="legacy" if kind == USER else None,
                   created_at=now, updated_at=now) for kind in (FUNDING, USER)]
    payments = [uuid4() for _ in range(3)]
    entries: list[Entry] = post([(usd[FUNDING], -10_000), (usd[USER], 10_000)], at=now)
    for n, payment in enumerate(payments):
        entries += post([(usd[USER], -(n + 1) * 111), (bob, (n + 1) * 111)], at=now + timedelta(microseconds=n * 7),
                        payment_id=payment)
    entries += post([(jpy[0], -5), (jpy[1], 5)], at=now - timedelta(days=400))
    accounts = [*usd.values(), bob, *jpy]

    with fresh_database(admin_database_url, migrate=_before_0010) as url:
        with psycopg.connect(url) as conn:
            conn.execute("INSERT INTO tenants (id, name) VALUES (%s, 'legacy')", [tenant])
            for a in accounts:
                conn.execute("INSERT INTO accounts (id, tenant_id, kind, user_id, currency, balance, version, "
                             "created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                             [a.id, tenant, a.kind, a.user_id, a.currency, a.balance, a.version, now, now])
            for n, payment in enumerate(payments):
                conn.execute("INSERT INTO payments (id, tenant_id, payment_type, status, source_account_id, "
                             "destination_account_id, amount, currency, created_at, updated_at) "
                             "VALUES (%s, %s, 'internal_transfer', 'completed', %s, %s, %s, 'USD', %s, %s)",
                             [payment, tenant, usd[USER].id, bob.id, (n + 1) * 111, now, now])
            for e in entries:
                conn.execute("INSERT INTO account_transactions (id, tenant_id, account_id, posting_id, payment_id, "
                             "seq, type, amount, balance_after, currency, created_at) "
                             "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                             [e.id, tenant, e.account_id, e.posting_id, e.payment_id, e.seq, e.type, e.amount,
                              e.balance_after, e.currency, e.created_at])
        assert apply_migrations(url)[0].startswith("0010")  # then whatever came after it

        with psycopg.connect(url) as conn:
            hashes = dict(conn.execute("SELECT id, hash FROM account_transactions").fetchall())
            heads = dict(conn.execute("SELECT id, last_entry_hash FROM accounts").fetchall())
        assert hashes == {e.id: e.hash for e in entries}
        assert heads == {a.id: a.last_entry_hash for a in accounts}
        assert GENESIS not in heads.values()

        services = await bootstrap(load_settings({"PAYMENTS_SECRETS_KEYS": SECRETS_KEYS}), url, redis_url)
        try:
            assert await services.audit.drift() == []
            await transfer(services.uow_factory, SystemClock(), tenant, usd[USER].id, bob.id, 1)
            async with services.uow_factory() as uow:
                latest = (await uow.ledger.list(tenant, bob.id, limit=1, cursor=None)).items[0]
            assert latest.seq == 4 and latest.chains_from(bob.last_entry_hash)
            assert await services.audit.drift() == []
        finally:
            await services.aclose()


# -- payments ledger check against rows changed in PostgreSQL -----------------------------------------------------

@pytest.fixture
def own_database(admin_database_url: str) -> Iterator[str]:
    """A database of the test's own: `ledger check` reads every tenant, and this test breaks its ledger."""
    with fresh_database(admin_database_url) as url:
        yield url


@pytest.fixture
async def conn(own_database: str) -> AsyncIterator[asyncpg.Connection]:
    """A superuser session in which no trigger fires: what a tamperer with access to the database would use."""
    connection = await asyncpg.connect(own_database)
    await connection.execute("SET session_replication_role = replica")
    yield connection
    await connection.close()


def ledger_check(database_url: str, redis_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMENTS_")}
    env.update(PAYMENTS_DATABASE_URL=database_url, PAYMENTS_REDIS_URL=redis_url)
    return subprocess.run([sys.executable, "-m", "payments", "ledger", "check"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


def drift_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The problems `ledger check` printed, after checking that it exited 1."""
    assert result.returncode == 1, result.stdout + result.stderr
    return [line for line in result.stdout.splitlines() if line.startswith("DRIFT ")]


def named(account: UUID, entry: UUID, seq: int, why: str) -> str:
    return f"DRIFT account {account}: entry {entry} (seq {seq}) breaks the hash chain: {why}"


async def put(conn: asyncpg.Connection, *moves: tuple[asyncpg.Record, asyncpg.Record]) -> None:
    """For each (row, place): give the row the seq, created_at and balance_after of `place` (rows are moved out of
    the way first: (account, seq) is unique, checked row by row)."""
    await conn.execute("UPDATE account_transactions SET seq = seq + 1000000 WHERE id = ANY($1::uuid[])",
                       [row["id"] for row, _ in moves])
    for row, place in moves:
        await conn.execute("UPDATE account_transactions SET seq = $2, created_at = $3, balance_after = $4 "
                           "WHERE id = $1", row["id"], place["seq"], place["created_at"], place["balance_after"])


async def test_ledger_check_names_an_entry_edited_deleted_or_moved_in_postgresql(
    own_database: str, redis_url: str, conn: asyncpg.Connection
) -> None:
    services = await bootstrap(load_settings({"PAYMENTS_SECRETS_KEYS": SECRETS_KEYS}), own_database, redis_url)
    clock = SystemClock()
    try:
        tenant = await new_tenant(services.uow_factory, clock)
        a = await open_account(services.uow_factory, clock, tenant.id, 10_000)
        b = await open_account(services.uow_factory, clock, tenant.id, user_id="bob")
        for _ in range(4):
            await transfer(services.uow_factory, clock, tenant.id, a.id, b.id, 250)
    finally:
        await services.aclose()
    rows = await conn.fetch("SELECT * FROM account_transactions WHERE account_id = $1 ORDER BY seq", a.id)
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5]
    check = lambda: asyncio.to_thread(ledger_check, own_database, redis_url)  # noqa: E731
    clean = await check()
    assert clean.returncode == 0 and "ledger ok" in clean.stdout, clean.stdout + clean.stderr

    # 1. an amount edited: the entry itself is named
    await conn.execute("UPDATE account_transactions SET amount = amount - 1 WHERE id = $1", rows[2]["id"])
    edited = await check()
    await conn.execute("UPDATE account_transactions SET amount = amount + 1 WHERE id = $1", rows[2]["id"])
    assert named(a.id, rows[2]["id"], 3, "its hash does not match its fields: it, or the entry before it, was "
                 "changed") in drift_lines(edited)

    # 2. an entry deleted: the one after it is named, with the gap
    await conn.execute("DELETE FROM account_transactions WHERE id = $1", rows[1]["id"])
    deleted = await check()
    columns = list(rows[1].keys())
    await conn.execute(f"INSERT INTO account_transactions ({', '.join(columns)}) "
                       f"VALUES ({', '.join(f'${n}' for n in range(1, len(columns) + 1))})", *rows[1].values())
    assert named(a.id, rows[2]["id"], 3, "entries before it are missing (seq 2)") in drift_lines(deleted)

    # 3. two equal debits swap places with their created_at and balance_after: every balance still chains and
    #    times still ascend, so only the hash chain sees it
    await put(conn, (rows[2], rows[3]), (rows[3], rows[2]))
    moved = await check()
    await put(conn, (rows[2], rows[2]), (rows[3], rows[3]))
    assert drift_lines(moved) == [named(a.id, rows[3]["id"], 3, "its hash does not match its fields: it, or the "
                                        "entry before it, was changed")]

    # 4. a stored hash edited (one byte of its 32, migration 0017): that entry is named; a hash that is not 32
    #    bytes is refused by the column's check, on entries and on the account's chain head alike
    flipped = bytes([rows[3]["hash"][0] ^ 1]) + rows[3]["hash"][1:]
    await conn.execute("UPDATE account_transactions SET hash = $2 WHERE id = $1", rows[3]["id"], flipped)
    rehashed = await check()
    await conn.execute("UPDATE account_transactions SET hash = $2 WHERE id = $1", rows[3]["id"], rows[3]["hash"])
    assert named(a.id, rows[3]["id"], 4, "its hash does not match its fields: it, or the entry before it, was "
                 "changed") in drift_lines(rehashed)
    for sql in ("UPDATE account_transactions SET hash = $2 WHERE id = $1",
                "UPDATE accounts SET last_entry_hash = $2 WHERE id = $1"):
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(sql, rows[3]["id"] if "account_transactions" in sql else a.id, rows[3]["hash"][:31])

    after = await check()
    assert after.returncode == 0 and "ledger ok" in after.stdout, after.stdout + after.stderr

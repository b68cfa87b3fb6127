"""Ledger entries in PostgreSQL (append-only) and the audit of API.md §4's invariants and hash chains."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import asyncpg

from adapters.cursor import decode_cursor, encode_cursor
from adapters.postgres.pool import translate_errors
from adapters.postgres.rows import Fragment, insert_entities, reader
from adapters.postgres.session import PgSession
from core.accounts import USER
from core.errors import FieldError, ValidationFailed
from core.hash_chain import GENESIS
from core.ledger import Entry, Window, name_system_rows, row_label
from core.ports import Page

COLUMNS = ("id, tenant_id, account_id, posting_id, payment_id, refund_id, seq, type, amount, balance_after,"
           " currency, created_at, hash")
#: The SQL types of COLUMNS, for many entries written as one array per column.
TYPES = ("uuid", "uuid", "uuid", "uuid", "uuid", "uuid", "bigint", "text", "bigint", "bigint", "text", "timestamptz",
         "bytea")


LIST = f"""SELECT {COLUMNS} FROM account_transactions
WHERE tenant_id = $1 AND account_id = $2 AND ($3::bigint IS NULL OR seq < $3)
ORDER BY seq DESC LIMIT $4"""

# Balances in time and statements (API.md §3), through `account_transactions_by_time` (migration 0015).
LAST_BEFORE = f"""SELECT {COLUMNS} FROM account_transactions
WHERE tenant_id = $1 AND account_id = $2 AND created_at < $3 ORDER BY created_at DESC, seq DESC LIMIT 1"""
WINDOW = """SELECT min(seq) AS first_seq, max(seq) AS last_seq, count(*) AS count,
    coalesce(sum(amount) FILTER (WHERE amount > 0), 0) AS credits,
    coalesce(sum(amount) FILTER (WHERE amount < 0), 0) AS debits
FROM account_transactions WHERE tenant_id = $1 AND account_id = $2 AND created_at >= $3 AND created_at < $4"""
BEFORE_SEQ = """SELECT balance_after - amount FROM account_transactions WHERE account_id = $1 AND seq = $2"""
# A keyset on (created_at, seq): each page starts where the last ended in `account_transactions_by_time`, so a
# million-entry statement reads each index entry once (an offset, or `seq >` with the time range, would not).
WINDOW_ENTRIES = f"""SELECT {COLUMNS} FROM account_transactions
WHERE tenant_id = $1 AND account_id = $2 AND (created_at, seq) > ($3, $4) AND created_at < $5 AND seq <= $6
ORDER BY created_at, seq LIMIT $7"""

#: core.hash_chain.GENESIS as a bytea literal.
GENESIS_SQL = f"'\\x{GENESIS.hex()}'::bytea"

# Each query returns one line per broken invariant.
AUDIT = {
    "balance equals the sum of entries": """
        SELECT 'account ' || a.id || ': balance ' || a.balance || ' but entries sum to ' || coalesce(t.total, 0)
        FROM accounts a LEFT JOIN (SELECT account_id, sum(amount) AS total FROM account_transactions
                                   GROUP BY account_id) t ON t.account_id = a.id
        WHERE a.balance <> coalesce(t.total, 0) OR a.version <> coalesce((SELECT max(seq) FROM account_transactions
                                                                           WHERE account_id = a.id), 0)""",
    "balance_after chains": """
        SELECT 'account ' || account_id || ': entry ' || id || ' (seq ' || seq || ') does not chain'
        FROM (SELECT id, account_id, seq, balance_after,
                     sum(amount) OVER w AS running, row_number() OVER w AS position
              FROM account_transactions WINDOW w AS (PARTITION BY account_id ORDER BY seq)) x
        WHERE balance_after <> running OR seq <> position""",
    # The first entry of each account whose hash does not follow from the entry before it, and why; worded as
    # core.ledger.chain_problems words it. ledger_entry_hash is migration 0017's SQL twin of core.hash_chain.
    "every hash chain holds": f"""
        WITH links AS (
            SELECT t.*, lag(seq) OVER w AS previous_seq, lag(hash) OVER w AS previous_hash
            FROM account_transactions t WINDOW w AS (PARTITION BY account_id ORDER BY seq)),
        broken AS (
            SELECT DISTINCT ON (account_id) * FROM links
            WHERE hash <> ledger_entry_hash(coalesce(previous_hash, {GENESIS_SQL}), id, account_id, payment_id, type,
                                            amount, balance_after, currency, created_at)
            ORDER BY account_id, seq)
        SELECT 'account ' || b.account_id || ': entry ' || b.id || ' (seq ' || b.seq || ') breaks the hash chain: '
               || CASE
            WHEN b.seq <> coalesce(b.previous_seq, 0) + 1 THEN
                'entries before it are missing (seq ' || coalesce(b.previous_seq, 0) + 1
                || CASE WHEN b.seq - 1 > coalesce(b.previous_seq, 0) + 1 THEN ' to ' || b.seq - 1 ELSE '' END || ')'
            WHEN b.hash = ledger_entry_hash({GENESIS_SQL}, b.id, b.account_id, b.payment_id, b.type, b.amount,
                                            b.balance_after, b.currency, b.created_at)
                THEN 'it is out of place: it was written as the account''s first entry'
            WHEN after.id IS NOT NULL
                THEN 'it is out of place: it was written after entry ' || after.id || ' (seq ' || after.seq || ')'
            ELSE 'its hash does not match its fields: it, or the entry before it, was changed' END
        FROM broken b LEFT JOIN LATERAL (
            SELECT o.id, o.seq FROM account_transactions o
            WHERE o.account_id = b.account_id AND o.id <> b.id
              AND b.hash = ledger_entry_hash(o.hash, b.id, b.account_id, b.payment_id, b.type, b.amount,
                                             b.balance_after, b.currency, b.created_at)
            ORDER BY o.seq LIMIT 1) after ON true
        ORDER BY b.account_id""",
    "held is the sum of active holds": """
        SELECT 'account ' || a.id || ': held ' || a.held || ' but its active holds sum to ' || coalesce(h.total, 0)
        FROM accounts a LEFT JOIN (SELECT source_account_id, sum(amount) AS total FROM holds
                                   WHERE status = 'active' GROUP BY source_account_id) h
             ON h.source_account_id = a.id
        WHERE a.held <> coalesce(h.total, 0)""",
    "each account's last_entry_hash is its latest entry's": f"""
        SELECT 'account ' || a.id || CASE WHEN l.id IS NULL
            THEN ': last_entry_hash is not the genesis value, yet it has no entries: they were removed, or the '
                 || 'account row was changed'
            ELSE ': last_entry_hash does not match its latest entry ' || l.id || ' (seq ' || l.seq || '): entries '
                 || 'after it were removed, it was moved, or the account row was changed' END
        FROM accounts a LEFT JOIN LATERAL (SELECT id, seq, hash FROM account_transactions t WHERE t.account_id = a.id
                                           ORDER BY seq DESC LIMIT 1) l ON true
        WHERE a.last_entry_hash <> coalesce(l.hash, {GENESIS_SQL})
        ORDER BY a.id""",
    "a tenant's balances sum to zero per currency": """
        SELECT 'tenant ' || tenant_id || ' ' || currency || ': balances sum to ' || sum(balance)
        FROM accounts GROUP BY tenant_id, currency HAVING sum(balance) <> 0""",
    "every posting balances": """
        SELECT 'posting ' || posting_id || ': entries sum to ' || sum(amount)
        FROM account_transactions GROUP BY posting_id HAVING sum(amount) <> 0 OR count(DISTINCT currency) <> 1""",
}


to_entry = reader(Entry, COLUMNS)


class PgLedger:
    """The `Ledger` port on PostgreSQL."""

    def __init__(self, session: PgSession) -> None:
        self._session = session
        self._new: list[Entry] = []

    def add(self, entries: Sequence[Entry]) -> None:
        self._new.extend(entries)

    async def list(self, tenant_id: UUID, account_id: UUID, *, limit: int, cursor: str | None) -> Page[Entry]:
        before = None
        if cursor is not None:
            (before,) = decode_cursor(cursor, 1)
            if not isinstance(before, int) or isinstance(before, bool) or not 0 < before < 2**63:
                raise ValidationFailed([FieldError("cursor", "is not a cursor this API returned")])
        rows = await self._session.read_all(LIST, to_entry, tenant_id, account_id, before, limit + 1)
        items = rows[:limit]
        return Page(items, encode_cursor(items[-1].seq) if len(rows) > limit else None)

    async def last_before(self, tenant_id: UUID, account_id: UUID, at: datetime) -> Entry | None:
        return await self._session.read_one(LAST_BEFORE, to_entry, tenant_id, account_id, at)

    async def window(self, tenant_id: UUID, account_id: UUID, start: datetime, end: datetime) -> Window:
        row = await self._session.fetchrow(WINDOW, tenant_id, account_id, start, end)
        assert row is not None  # an aggregate always answers one row
        if row["first_seq"] is None:
            before = await self.last_before(tenant_id, account_id, start)
            opening = before.balance_after if before is not None else 0
        else:
            first = await self._session.fetchrow(BEFORE_SEQ, account_id, row["first_seq"])
            assert first is not None
            opening = first[0]
        return Window(first_seq=row["first_seq"], last_seq=row["last_seq"], count=row["count"],
                      credits=row["credits"], debits=row["debits"], opening=opening)

    async def window_entries(
        self, tenant_id: UUID, account_id: UUID, window: Window, start: datetime, end: datetime, *,
        after: tuple[datetime, int] | None, limit: int,
    ) -> builtins.list[Entry]:
        if window.last_seq is None:
            return []
        since, seq = after if after is not None else (start, -1)
        return await self._session.read_all(WINDOW_ENTRIES, to_entry, tenant_id, account_id, since, seq, end,
                                            window.last_seq, limit)

    def flush(self) -> builtins.list[Fragment]:
        return insert_entities("account_transactions", COLUMNS, self._new, types=TYPES)


class PgLedgerAudit:
    """The `LedgerAudit` port: reads the whole ledger in one REPEATABLE READ snapshot."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def drift(self) -> list[str]:
        problems: list[str] = []
        with translate_errors():
            async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
                for sql in AUDIT.values():
                    problems += [row[0] for row in await conn.fetch(sql)]
                if not problems:
                    return []
                rows = await conn.fetch("SELECT id, tenant_id, kind, currency, shard FROM accounts WHERE kind <> $1",
                                        USER)
        return name_system_rows(problems, {str(r["id"]): row_label(r["tenant_id"], r["kind"], r["currency"], r["shard"])
                                           for r in rows})

"""The PostgreSQL unit of work: one transaction; buffered writes flushed as one statement at commit."""

from __future__ import annotations

import contextlib
import functools
import re
from types import TracebackType
from typing import Any
from uuid import UUID

import asyncpg

from adapters.postgres.accounts import PgAccounts
from adapters.postgres.ledger import PgLedger
from adapters.postgres.local_locks import LocalLocks
from adapters.postgres.misc import PgIdempotencyKeys, PgOutbox, PgTenants
from adapters.postgres.payments import PgPayments
from adapters.postgres.pool import translate_errors
from adapters.postgres.refunds import PgDeadLetters, PgRefunds
from adapters.postgres.rows import Fragment
from adapters.postgres.webhooks import PgWebhooks
from core.errors import ConcurrencyConflict, IdempotencyRequestInProgress

_PARAM = re.compile(r"\$(\d+)")



def compose(fragments: list[Fragment]) -> Fragment:
    """Join data-modifying statements into one `WITH` statement (one round trip).

    Each fragment numbers its own parameters from $1; they are renumbered here.
    Foreign keys are checked at the end of the statement, so the order of the
    fragments only has to be a valid one for readers.
    """
    args = [value for _, values in fragments for value in values]
    return _statement(tuple((sql, len(values)) for sql, values in fragments)), args


@functools.lru_cache(maxsize=256)
def _statement(shape: tuple[tuple[str, int], ...]) -> str:
    """The composed SQL for a sequence of (fragment, parameter count); few shapes recur."""
    parts, offset = [], 0
    for index, (sql, count) in enumerate(shape):
        parts.append(f"w{index} AS ({_PARAM.sub(functools.partial(_shift, offset), sql)})")
        offset += count
    return "WITH " + ",\n".join(parts) + "\nSELECT 1"


class PgUnitOfWork:
    """One pooled connection and, unless read-only, one transaction (READ COMMITTED + row locks)."""

    def __init__(
        self, pool: asyncpg.Pool, *, read_only: bool, acquire_timeout: float, local_locks: LocalLocks | None = None
    ) -> None:
        self._pool, self._read_only, self._timeout = pool, read_only, acquire_timeout
        self.local_locks = local_locks or LocalLocks()
        self.held: list[UUID] = []
        self._conn: Any = None
        self._tx: Any = None
        self.accounts = PgAccounts(self)
        self.ledger = PgLedger(self)
        self.payments = PgPayments(self)
        self.outbox = PgOutbox()
        self.idempotency = PgIdempotencyKeys(self)
        self.tenants = PgTenants(self)
        self.refunds = PgRefunds(self)
        self.dead_letters = PgDeadLetters(self)
        self.webhooks = PgWebhooks(self)

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        with translate_errors():
            rows: list[asyncpg.Record] = await self._conn.fetch(sql, *args)
        return rows

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        with translate_errors():
            row: asyncpg.Record | None = await self._conn.fetchrow(sql, *args)
        return row

    async def __aenter__(self) -> PgUnitOfWork:
        with translate_errors():
            self._conn = await self._pool.acquire(timeout=self._timeout)
            if not self._read_only:
                try:
                    self._tx = self._conn.transaction()
                    await self._tx.start()
                except BaseException:
                    await self._pool.release(self._conn)
                    raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self._tx is not None and not self._conn.is_closed():
                # A transaction interrupted mid-statement (client gone, timeout) may refuse a
                # clean rollback; the pool's reset rolls it back, or drops a broken connection.
                with contextlib.suppress(asyncpg.InterfaceError, asyncpg.PostgresError, OSError):
                    await self._tx.rollback()
        finally:
            self._tx = None
            await self._pool.release(self._conn)
            self._release_local()

    async def commit(self) -> None:
        """Write everything buffered in one statement, then COMMIT."""
        fragments = [
            *self.tenants.flush(), *self.accounts.flush(), *self.payments.flush(), *self.refunds.flush(),
            *self.ledger.flush(), *self.outbox.flush(), *self.idempotency.flush(), *self.dead_letters.flush(),
            *self.webhooks.flush(),
        ]
        try:
            with translate_errors():
                if fragments:
                    sql, args = compose(fragments)
                    await self._conn.execute(sql, *args)
                await self._tx.commit()
        except asyncpg.UniqueViolationError as error:
            if error.constraint_name == "idempotency_keys_pkey":
                raise IdempotencyRequestInProgress("this Idempotency-Key was stored by a concurrent request") from error
            if error.constraint_name == "one_event_per_version":
                raise ConcurrencyConflict("the payment changed since it was read; retry") from error
            raise
        self._tx = None
        self._release_local()

    def _release_local(self) -> None:
        self.local_locks.release(self.held)
        self.held = []


def _shift(offset: int, match: re.Match[str]) -> str:
    return f"${int(match.group(1)) + offset}"

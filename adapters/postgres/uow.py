"""The PostgreSQL unit of work: one transaction; buffered writes flushed as one statement at commit.

It builds the repositories over the connection it holds (`PgSession`); they never import it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection
from types import TracebackType
from typing import Any
from uuid import UUID

import asyncpg
from loguru import logger

from adapters.crypto import SecretBox
from adapters.local_locks import TURNS_PER_ACCOUNT, LocalLocks, ascending
from adapters.postgres.accounts import PgAccounts
from adapters.postgres.batches import PgBatches
from adapters.postgres.dead_letters import PgDeadLetters
from adapters.postgres.events import PgEvents
from adapters.postgres.holds import PgHolds
from adapters.postgres.idempotency import PgIdempotencyKeys
from adapters.postgres.ledger import PgLedger
from adapters.postgres.outbox import PgOutbox
from adapters.postgres.payments import PgPayments
from adapters.postgres.pool import translate_errors
from adapters.postgres.reconciliations import PgReconciliations
from adapters.postgres.refunds import PgRefunds
from adapters.postgres.rows import folding, statements
from adapters.postgres.session import PgSession
from adapters.postgres.tenants import PgTenants
from adapters.postgres.webhooks import PgWebhooks
from core.errors import ConcurrencyConflict, IdempotencyRequestInProgress


class PgUnitOfWork:
    """One pooled connection and, unless read-only, one transaction (READ COMMITTED + row locks).

    Entering it waits at most `acquire_timeout` in all, first for the turns of the accounts it
    declares (`lock_accounts`), then for a pooled connection, and raises `Unavailable` beyond:
    load is shed, not queued without end, and requests piling onto one hot account wait for
    their turn holding no connection, so they cannot starve the pool for everyone else.

    An `optimistic` one opens no transaction: its reads run alone, and its writes go as one
    statement, which PostgreSQL runs atomically in a transaction of its own (or, should they
    need several, in a transaction opened for them at the end).
    """

    def __init__(
        self, pool: asyncpg.Pool, *, read_only: bool, acquire_timeout: float, local_locks: LocalLocks | None = None,
        turns: LocalLocks | None = None, lock_accounts: Collection[UUID] = (), secret_box: SecretBox,
        optimistic: bool = False,
    ) -> None:
        self._pool, self._read_only, self._timeout = pool, read_only, acquire_timeout
        self._optimistic = optimistic and not read_only
        self._turns, self._lock_accounts = turns or LocalLocks(TURNS_PER_ACCOUNT), lock_accounts
        self._my_turns: list[UUID] = []
        self._session = session = PgSession(local_locks or LocalLocks(), lock_timeout=acquire_timeout,
                                            optimistic=self._optimistic)
        self._prelock = [] if read_only else ascending(lock_accounts)
        self._tx: Any = None
        self.accounts = PgAccounts(session)
        self.ledger = PgLedger(session)
        self.payments = PgPayments(session)
        self.outbox = PgOutbox()
        self.idempotency = PgIdempotencyKeys(session, secret_box)
        self.tenants = PgTenants(session)
        self.refunds = PgRefunds(session)
        self.holds = PgHolds(session)
        self.dead_letters = PgDeadLetters(session)
        self.webhooks = PgWebhooks(session, secret_box)
        self.reconciliations = PgReconciliations(session)
        self.events = PgEvents(session)
        self.batches = PgBatches(session)

    async def __aenter__(self) -> PgUnitOfWork:
        deadline = asyncio.get_running_loop().time() + self._timeout
        self._my_turns = await self._turns.acquire(self._lock_accounts, deadline=deadline)
        try:
            await self._connect(deadline)
        except BaseException:
            self._end_turns()
            raise
        return self

    async def _connect(self, deadline: float) -> None:
        """Take a pooled connection by `deadline` (asyncpg's TimeoutError becomes `Unavailable`) and BEGIN."""
        with translate_errors():
            conn = await self._pool.acquire(timeout=max(0.0, deadline - asyncio.get_running_loop().time()))
            if not self._read_only and not self._optimistic:
                try:
                    self._tx = conn.transaction()
                    await self._tx.start()
                except BaseException:
                    self._tx = None
                    conn.terminate()  # it may be broken (a lost server): the pool opens a fresh one
                    await self._pool.release(conn)
                    raise
        self._session.conn = conn
        self._session.prelock = self._prelock

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Leaving the block normally commits; an exception (or a failed commit) rolls back."""
        try:
            if exc_type is None and (self._tx is not None or self._optimistic):
                await self._commit()
        finally:
            try:
                # A transaction interrupted mid-statement (client gone, timeout) may refuse a clean
                # rollback, and after a lost connection even asking whether it is closed raises: the
                # pool's reset rolls it back, or drops the broken connection.
                with contextlib.suppress(asyncpg.InterfaceError, asyncpg.PostgresError, OSError):
                    if self._tx is not None and not self._session.conn.is_closed():
                        await self._tx.rollback()
            finally:
                self._tx = None
                try:
                    await self._release()
                finally:
                    self._session.release_local()
                    self._end_turns()

    async def _release(self) -> None:
        """Give the connection back; a failure to reset it never fails the unit of work, which has committed or
        rolled back already (or is raising its own error, which must not be replaced).

        asyncpg resets a released connection within the timeout given to `acquire` unless told otherwise: here
        what was left of the wait for a turn and a connection, a few milliseconds under overload. A reset that
        then has I/O to do (waiting out a cancelled statement, a ROLLBACK) overran it, asyncpg terminated the
        connection and raised TimeoutError out of the block: an HTTP 500, after a commit. So the reset gets a
        bound of its own, and beyond it the terminated connection is simply replaced by the pool.
        """
        try:
            await self._pool.release(self._session.conn, timeout=self._timeout)
        except (asyncpg.InterfaceError, asyncpg.PostgresError, asyncpg.exceptions.InternalClientError,
                OSError) as error:  # OSError: asyncio's TimeoutError too; InterfaceError: already released
            if not isinstance(error, asyncpg.InterfaceError):
                logger.warning("a database connection could not be reset ({!r}): the pool replaces it", error)

    def _end_turns(self) -> None:
        self._turns.release(self._my_turns)
        self._my_turns = []

    async def _commit(self) -> None:
        """Write everything buffered in one statement (a few for the largest batches), then COMMIT. Without a
        transaction (optimistic), one statement commits by itself, and several get a transaction of their own."""
        batches = self.batches.flush()
        with folding(bool(batches)):  # a batch's hundreds of rows: their shared values go once
            fragments = [
                *self.tenants.flush(), *self.accounts.flush(), *self.payments.flush(), *self.refunds.flush(),
                *self.holds.flush(),
                *self.ledger.flush(), *self.outbox.flush(), *self.idempotency.flush(), *self.dead_letters.flush(),
                *self.webhooks.flush(), *self.reconciliations.flush(), *batches,
            ]
        try:
            with translate_errors():
                writes = statements(fragments)
                if self._tx is None and len(writes) > 1:
                    self._tx = self._session.conn.transaction()
                    await self._tx.start()
                for sql, args in writes:
                    await self._session.conn.execute(sql, *args)
                if self._tx is not None:
                    await self._tx.commit()
        except asyncpg.UniqueViolationError as error:
            if error.constraint_name == "idempotency_keys_pkey":
                raise IdempotencyRequestInProgress("this Idempotency-Key was stored by a concurrent request") from error
            if error.constraint_name == "one_event_per_version":
                raise ConcurrencyConflict("the payment changed since it was read; retry") from error
            raise
        self._tx = None  # committed: nothing left to roll back

"""The connection of one unit of work, as its repositories use it: driver errors translated, local locks held."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any, TypeVar
from uuid import UUID

import asyncpg

from adapters.local_locks import LocalLocks
from adapters.postgres.pool import translate_errors
from core.ports.unit_of_work import NO_LOCK_WHEN_OPTIMISTIC

T = TypeVar("T")


class PgSession:
    """The pooled connection a unit of work holds (`conn`, set while it is open) and the in-process
    account locks it has taken, released when it ends; waiting for one lasts at most `lock_timeout`."""

    def __init__(self, local_locks: LocalLocks, lock_timeout: float | None = None, *, optimistic: bool = False) -> None:
        self.conn: Any = None
        self.local_locks, self.lock_timeout = local_locks, lock_timeout
        self.held: list[UUID] = []
        #: The accounts the unit of work declared (`lock_accounts`), ascending: the idempotency claim row-locks them
        #: in its own statement (one round trip for both) and leaves their rows in `prelocked` for `accounts.lock`.
        self.prelock: list[UUID] = []
        self.prelocked: tuple[UUID, list[UUID], list[asyncpg.Record]] | None = None
        #: An optimistic unit of work's session, which has no transaction: a row lock would be released at once.
        self.optimistic = optimistic

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        self._no_lock_if_optimistic(sql)
        with translate_errors():
            rows: list[asyncpg.Record] = await self.conn.fetch(sql, *args)
        return rows

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        self._no_lock_if_optimistic(sql)
        with translate_errors():
            row: asyncpg.Record | None = await self.conn.fetchrow(sql, *args)
        return row

    def _no_lock_if_optimistic(self, sql: str) -> None:
        if "FOR UPDATE" in sql:
            self._refuse_lock_if_optimistic()

    def _refuse_lock_if_optimistic(self) -> None:
        if self.optimistic:
            raise RuntimeError(NO_LOCK_WHEN_OPTIMISTIC)

    async def read_one(self, sql: str, read: Callable[[asyncpg.Record], T], *args: Any) -> T | None:
        """The first row `sql` selects, through the row mapper `read`; None when there is none."""
        row = await self.fetchrow(sql, *args)
        return None if row is None else read(row)

    async def read_all(self, sql: str, read: Callable[[asyncpg.Record], T], *args: Any) -> list[T]:
        return [read(row) for row in await self.fetch(sql, *args)]

    async def hold_local(self, ids: Iterable[UUID]) -> None:
        """Take the local locks of `ids` this session does not hold yet, in ascending id order;
        `Unavailable` if they stay busy beyond the bound."""
        self._refuse_lock_if_optimistic()
        wanted = set(ids) - set(self.held)
        deadline = None if self.lock_timeout is None else asyncio.get_running_loop().time() + self.lock_timeout
        self.held += await self.local_locks.acquire(wanted, deadline=deadline)

    async def try_hold_local(self, ids: Iterable[UUID]) -> bool:
        """Take the local locks of `ids` this session does not hold yet if they are all free now; whether it has
        them all."""
        wanted = set(ids) - set(self.held)
        taken = await self.local_locks.try_acquire(wanted)
        if taken is None:
            return False
        self.held += taken
        return True

    def release_local(self) -> None:
        self.local_locks.release(self.held)
        self.held = []
        self.prelock, self.prelocked = [], None

    def take_prelocked(self, tenant_id: UUID, ids: list[UUID]) -> list[asyncpg.Record] | None:
        """The rows the claim locked, once, when they are exactly the accounts `ids` (ascending) of `tenant_id`;
        else None (the caller locks them itself)."""
        prelocked, self.prelocked = self.prelocked, None
        if prelocked is None or prelocked[0] != tenant_id or prelocked[1] != ids:
            return None
        return prelocked[2]

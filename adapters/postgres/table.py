"""One table as a unit of work sees it: a row read or locked by (tenant, id) into an entity, changes buffered."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar
from uuid import UUID

import asyncpg

from adapters.pending import Identified, Pending
from adapters.postgres.session import PgSession

R = TypeVar("R", bound=Identified)


class Table(Generic[R]):
    """Rows of one table read through the mapper `read`; `get` and `lock` run the repository's statements
    selecting one row by `tenant_id = $1 AND id = $2` (`lock`'s `FOR UPDATE`). What `pending` buffers is
    written by the repository's `flush`."""

    def __init__(
        self, session: PgSession, read: Callable[[asyncpg.Record], R], *, lock: str, get: str | None = None
    ) -> None:
        self._session, self._read, self._lock, self._get = session, read, lock, get
        self.pending = Pending[R]()

    async def get(self, tenant_id: UUID, row_id: UUID) -> R | None:
        assert self._get is not None, "this table was given no statement for get"
        return await self._session.read_one(self._get, self._read, tenant_id, row_id)

    async def lock(self, tenant_id: UUID, row_id: UUID) -> R | None:
        """The row, locked until the transaction ends; this unit of work's own change wins over it."""
        return self.pending.current(await self._session.read_one(self._lock, self._read, tenant_id, row_id))

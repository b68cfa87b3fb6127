"""One table as a unit of work sees it: a row read or locked by (tenant, id) into an entity, changes buffered."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, TypeVar
from uuid import UUID

import asyncpg

from adapters.pending import Identified, Pending
from adapters.postgres.session import PgSession

R = TypeVar("R", bound=Identified)


class Table(Generic[R]):
    """Rows of one table read through the mapper `read`; `get` and `lock` run the repository's statements
    selecting one row by `tenant_id = $1 AND id = $2` (`lock`'s `FOR UPDATE`), `get_all` and `lock_all` those
    selecting several by `tenant_id = $1 AND id = ANY($2)` (`lock_all`'s in ascending id order). What `pending`
    buffers is written by the repository's `flush`.

    Rows read by `get_all` or `lock_all` are kept for the unit of work: a later `get` of one of them reads it from
    memory, and a later `lock` too when `lock_all` locked it (it stays locked until the transaction ends). So work
    that several tasks share, one unit of work for all, reads their rows in one statement, then each task's own
    `get` or `lock` costs no round trip."""

    def __init__(
        self, session: PgSession, read: Callable[[asyncpg.Record], R], *, lock: str, get: str | None = None,
        get_all: str | None = None, lock_all: str | None = None,
    ) -> None:
        self._session, self._read, self._lock, self._get = session, read, lock, get
        self._get_all, self._lock_all = get_all, lock_all
        self.pending = Pending[R]()
        self._read_rows: dict[tuple[UUID, UUID], R | None] = {}  # by get_all
        self._locked_rows: dict[tuple[UUID, UUID], R | None] = {}  # by lock_all

    async def get(self, tenant_id: UUID, row_id: UUID) -> R | None:
        slot = (tenant_id, row_id)
        for kept in (self._locked_rows, self._read_rows):
            if slot in kept:
                return self.pending.current(kept[slot])
        assert self._get is not None, "this table was given no statement for get"
        return await self._session.read_one(self._get, self._read, tenant_id, row_id)

    async def lock(self, tenant_id: UUID, row_id: UUID) -> R | None:
        """The row, locked until the transaction ends; this unit of work's own change wins over it."""
        if (tenant_id, row_id) in self._locked_rows:
            return self.pending.current(self._locked_rows[(tenant_id, row_id)])
        return self.pending.current(await self._session.read_one(self._lock, self._read, tenant_id, row_id))

    async def get_all(self, tenant_id: UUID, row_ids: Sequence[UUID]) -> dict[UUID, R]:
        """The rows of `row_ids` that exist, by id, in one statement; kept for this unit of work's `get`."""
        assert self._get_all is not None, "this table was given no statement for get_all"
        return self._keep(self._read_rows, tenant_id, row_ids,
                          await self._session.read_all(self._get_all, self._read, tenant_id, list(row_ids)))

    async def lock_all(self, tenant_id: UUID, row_ids: Sequence[UUID]) -> dict[UUID, R]:
        """The rows of `row_ids` that exist, by id, locked in ascending id order in one statement until the
        transaction ends; kept for this unit of work's `get` and `lock`."""
        assert self._lock_all is not None, "this table was given no statement for lock_all"
        return self._keep(self._locked_rows, tenant_id, row_ids,
                          await self._session.read_all(self._lock_all, self._read, tenant_id, list(row_ids)))

    def _keep(self, kept: dict[tuple[UUID, UUID], R | None], tenant_id: UUID, row_ids: Sequence[UUID],
              rows: list[R]) -> dict[UUID, R]:
        kept.update(dict.fromkeys(((tenant_id, row_id) for row_id in row_ids), None))
        kept.update(((tenant_id, row.id), row) for row in rows)
        return {row.id: self.pending.current(row) for row in rows}

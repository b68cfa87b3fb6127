"""One table of the in-memory store as a unit of work sees it: copies of committed rows, row locks, buffered changes."""

from __future__ import annotations

import copy
from typing import Generic, Protocol, TypeVar
from uuid import UUID

from adapters.memory.state import MemorySession
from adapters.pending import Identified, Pending


class Owned(Identified, Protocol):
    """A row of one tenant."""

    @property
    def tenant_id(self) -> UUID: ...


R = TypeVar("R", bound=Owned)


class Table(Generic[R]):
    """The rows of one `StoreState` dict, read as copies (a change counts once saved and committed),
    locked by `(kind, id)` until the unit of work ends, changed through `pending`."""

    def __init__(self, session: MemorySession, rows: dict[UUID, R], kind: str) -> None:
        self._session, self._rows, self._kind = session, rows, kind
        self.pending = Pending[R]()

    def _committed(self, tenant_id: UUID, row_id: UUID) -> R | None:
        found = self._rows.get(row_id)
        return found if found is not None and found.tenant_id == tenant_id else None

    def get(self, tenant_id: UUID, row_id: UUID) -> R | None:
        found = self._committed(tenant_id, row_id)
        return None if found is None else copy.deepcopy(found)

    async def lock(self, tenant_id: UUID, row_id: UUID) -> R | None:
        """Take the row's lock (waiting for whoever holds it), then read it again: this unit of work's
        own change wins over the committed row."""
        if self._committed(tenant_id, row_id) is None:
            return None
        await self._session.hold((self._kind, row_id))
        return self.pending.mine(row_id) or self.get(tenant_id, row_id)

    def apply(self) -> None:
        """Write the buffered rows into the store (the unit of work's commit)."""
        for row in self.pending.changed():
            self._rows[row.id] = copy.deepcopy(row)

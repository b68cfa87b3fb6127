"""In-memory batches, stored as answered."""

from __future__ import annotations

import copy
from uuid import UUID

from adapters.memory.state import StoreState
from core.batches import Batch


class MemoryBatches:
    """The `Batches` port over `StoreState.batches`."""

    def __init__(self, store: StoreState) -> None:
        self._store = store
        self.new: list[Batch] = []

    def add(self, batch: Batch) -> None:
        self.new.append(batch)

    async def get(self, tenant_id: UUID, batch_id: UUID) -> Batch | None:
        found = self._store.batches.get(batch_id)
        return copy.deepcopy(found) if found is not None and found.tenant_id == tenant_id else None

    def check(self) -> None:
        """Refuse what the primary key refuses: a batch id stored twice (ids are never reused)."""
        if any(batch.id in self._store.batches for batch in self.new):
            raise ValueError("a batch with this id is already stored")

    def apply(self) -> None:
        for batch in self.new:
            self._store.batches[batch.id] = copy.deepcopy(batch)

"""In-memory batches, stored as answered."""

from __future__ import annotations

import copy
from uuid import UUID

from adapters.memory.pending import Pending, tenants_copy
from core.batches import Batch


class MemoryBatches(Pending[Batch]):
    """The `Batches` port over `StoreState.batches`."""

    async def get(self, tenant_id: UUID, batch_id: UUID) -> Batch | None:
        return tenants_copy(self._store.batches.get(batch_id), tenant_id)

    def check(self) -> None:
        """Refuse what the primary key refuses: a batch id stored twice (ids are never reused)."""
        if any(batch.id in self._store.batches for batch in self.new):
            raise ValueError("a batch with this id is already stored")

    def apply(self) -> None:
        for batch in self.new:
            self._store.batches[batch.id] = copy.deepcopy(batch)

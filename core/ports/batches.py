"""The port of batches: each batch of transfers stored as it was answered (API.md §10)."""

from __future__ import annotations

from typing import Protocol
from uuid import UUID

from core.batches import Batch


class Batches(Protocol):
    """Batches of every tenant, as answered.

    `add` is buffered and written when the unit of work commits, with the transfers the batch made; a batch
    is stored once and never changes. `get` never returns another tenant's batch.
    """

    def add(self, batch: Batch) -> None: ...

    async def get(self, tenant_id: UUID, batch_id: UUID) -> Batch | None: ...

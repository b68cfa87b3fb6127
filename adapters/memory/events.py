"""The in-memory events feed: `StoreState.outbox` is appended to when a unit of work commits, so list order is
commit order, and nothing can later commit in front of what a reader was given."""

from __future__ import annotations

from collections.abc import Collection
from uuid import UUID

from adapters.memory.state import StoreState
from core.errors import UnknownEvent
from core.events import OutboxMessage
from core.ports import Page


class MemoryEvents:
    """The `Events` port over `StoreState.outbox` (purged by the housekeeping lease, as the table is)."""

    def __init__(self, store: StoreState) -> None:
        self._store = store

    async def get(self, tenant_id: UUID, event_id: UUID) -> OutboxMessage | None:
        return next((m for m in self._store.outbox if m.id == event_id and m.tenant_id == tenant_id), None)

    async def page(
        self, tenant_id: UUID, *, after: UUID | None, types: Collection[str], limit: int
    ) -> Page[OutboxMessage]:
        kept = [m for m in self._store.outbox if m.tenant_id == tenant_id]
        start = 0
        if after is not None:
            start = next((n + 1 for n, m in enumerate(kept) if m.id == after), -1)
            if start < 0:
                raise UnknownEvent("after")
        found = [m for m in kept[start:] if m.topic in types][:limit + 1]
        items = found[:limit]
        return Page(items, str(items[-1].id) if len(found) > limit else None)

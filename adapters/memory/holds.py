"""In-memory holds: buffered writes, newest-first listing, the due holds of an account and of every tenant."""

from __future__ import annotations

import builtins
import copy
from collections.abc import Mapping
from datetime import datetime
from uuid import UUID

from adapters.memory.paging import holds as matches
from adapters.memory.paging import time_id_page
from adapters.memory.state import MemorySession
from adapters.memory.table import Table
from core.holds import Hold, HoldStatus
from core.ports import Page


class MemoryHolds:
    """The `Holds` port over `StoreState.holds`."""

    def __init__(self, session: MemorySession) -> None:
        self._store = session.state
        self._table = Table(session, session.state.holds, "hold")
        self.add, self.save = self._table.pending.add, self._table.pending.save  # buffered until commit
        self.apply = self._table.apply

    async def get(self, tenant_id: UUID, hold_id: UUID) -> Hold | None:
        return self._table.pending.mine(hold_id) or self._table.get(tenant_id, hold_id)

    async def list(
        self, tenant_id: UUID, *, account_id: UUID | None, status: HoldStatus | None,
        metadata: Mapping[str, str] | None, now: datetime, limit: int, cursor: str | None,
    ) -> Page[Hold]:
        rows = [copy.deepcopy(h) for h in self._store.holds.values() if h.tenant_id == tenant_id
                and (account_id is None or account_id in (h.source_account_id, h.destination_account_id))
                and (status is None or h.effective_status(now) is status) and matches(h.metadata, metadata)]
        return time_id_page(rows, limit, cursor)

    async def due(self, tenant_id: UUID, account_id: UUID, now: datetime) -> builtins.list[Hold]:
        seen = (self._table.pending.mine(h.id) or copy.deepcopy(h) for h in self._store.holds.values()
                if h.tenant_id == tenant_id and h.source_account_id == account_id)
        return sorted((h for h in seen if h.is_due(now)), key=lambda h: (h.expires_at, h.id))

    async def expiring(self, now: datetime, limit: int) -> builtins.list[tuple[UUID, UUID]]:
        due = sorted((h for h in self._store.holds.values() if h.is_due(now)), key=lambda h: (h.expires_at, h.id))
        return [(h.tenant_id, h.source_account_id) for h in due[:limit]]

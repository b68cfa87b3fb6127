"""In-memory refunds: row locks, buffered writes, newest-first listing per payment."""

from __future__ import annotations

import builtins
import copy
from uuid import UUID

from adapters.memory.paging import time_id_page
from adapters.memory.state import MemorySession
from adapters.memory.table import Table
from core.ports import Page
from core.refunds import Refund


class MemoryRefunds:
    """The `Refunds` port over `StoreState.refunds`."""

    def __init__(self, session: MemorySession) -> None:
        self._store = session.state
        self._table = Table(session, session.state.refunds, "refund")
        self.add, self.save = self._table.pending.add, self._table.pending.save  # buffered until commit
        self.lock, self.apply = self._table.lock, self._table.apply

    async def for_payment(self, tenant_id: UUID, payment_id: UUID) -> builtins.list[Refund]:
        mine = [r for r in self._store.refunds.values() if r.tenant_id == tenant_id and r.payment_id == payment_id]
        return [copy.deepcopy(r) for r in sorted(mine, key=lambda r: (r.created_at, r.id), reverse=True)]

    async def list(self, tenant_id: UUID, payment_id: UUID, *, limit: int, cursor: str | None) -> Page[Refund]:
        return time_id_page(await self.for_payment(tenant_id, payment_id), limit, cursor)

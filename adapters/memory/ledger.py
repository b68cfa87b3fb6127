"""In-memory ledger entries: append-only, listed newest first, read by time for balances and statements."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from adapters.cursor import decode_cursor, encode_cursor
from adapters.memory.paging import entry_key, page
from adapters.memory.state import StoreState
from core.ledger import Entry, Window
from core.ports import Page


class MemoryLedger:
    """The `Ledger` port over `StoreState.entries`."""

    def __init__(self, store: StoreState) -> None:
        self._store = store
        self.new: list[Entry] = []

    def add(self, entries: Sequence[Entry]) -> None:
        self.new.extend(entries)

    async def list(self, tenant_id: UUID, account_id: UUID, *, limit: int, cursor: str | None) -> Page[Entry]:
        rows = [e for e in self._store.entries if e.account_id == account_id and e.tenant_id == tenant_id]
        after = entry_key(decode_cursor(cursor, 1)) if cursor is not None else None
        items, more = page(rows, limit, after, key=lambda e: (e.seq,))
        return Page(items, encode_cursor(items[-1].seq) if more else None)

    def _of(self, tenant_id: UUID, account_id: UUID) -> builtins.list[Entry]:
        """The account's entries in `seq` order (the store appends them in commit order)."""
        return [e for e in self._store.entries if e.account_id == account_id and e.tenant_id == tenant_id]

    async def last_before(self, tenant_id: UUID, account_id: UUID, at: datetime) -> Entry | None:
        earlier = [e for e in self._of(tenant_id, account_id) if e.created_at < at]
        return max(earlier, key=lambda e: (e.created_at, e.seq), default=None)

    async def window(self, tenant_id: UUID, account_id: UUID, start: datetime, end: datetime) -> Window:
        inside = [e for e in self._of(tenant_id, account_id) if start <= e.created_at < end]
        if not inside:
            before = await self.last_before(tenant_id, account_id, start)
            return Window(first_seq=None, last_seq=None, count=0, credits=0, debits=0,
                          opening=before.balance_after if before is not None else 0)
        first = min(inside, key=lambda e: e.seq)
        return Window(first_seq=first.seq, last_seq=max(e.seq for e in inside), count=len(inside),
                      credits=sum(e.amount for e in inside if e.amount > 0),
                      debits=sum(e.amount for e in inside if e.amount < 0), opening=first.balance_after - first.amount)

    async def window_entries(
        self, tenant_id: UUID, account_id: UUID, window: Window, start: datetime, end: datetime, *,
        after: tuple[datetime, int] | None, limit: int,
    ) -> builtins.list[Entry]:
        last = window.last_seq if window.last_seq is not None else -1
        since = after if after is not None else (start, -1)
        inside = [e for e in self._of(tenant_id, account_id)
                  if e.seq <= last and (e.created_at, e.seq) > since and e.created_at < end]
        return sorted(inside, key=lambda e: (e.created_at, e.seq))[:limit]

    def apply(self) -> None:
        self._store.entries.extend(self.new)

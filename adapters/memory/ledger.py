"""In-memory ledger entries: append-only, listed newest first."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from adapters.cursor import decode_cursor, encode_cursor
from adapters.memory.paging import entry_key, page
from adapters.memory.state import StoreState
from core.ledger import Entry
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

    def apply(self) -> None:
        self._store.entries.extend(self.new)

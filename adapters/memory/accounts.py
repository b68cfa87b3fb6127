"""In-memory accounts: row locks in id order, system accounts created on demand, buffered writes."""

from __future__ import annotations

import copy
import random
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from uuid import UUID

from adapters.cursor import decode_cursor, encode_cursor
from adapters.memory.paging import account_key, holds, page
from adapters.memory.state import MemorySession, SystemSlot
from adapters.pending import Pending
from core.accounts import SYSTEM_SHARDS, Account, AccountStatus
from core.ids import new_id
from core.ports import Page


class MemoryAccounts:
    """The `Accounts` port over `StoreState.accounts`."""

    def __init__(self, session: MemorySession) -> None:
        self._session, self._store = session, session.state
        self._pending = Pending[Account]()
        self.add, self.save = self._pending.add, self._pending.save  # buffered until commit
        self.save_controls = self._pending.save  # the whole row is kept: controls and postings alike
        self.created: dict[SystemSlot, Account] = {}  # system accounts this unit of work inserted
        self._shards: dict[tuple[UUID, str, str], int] = {}  # the row of each system account it uses

    def _row(self, account_id: UUID) -> Account | None:
        """The row as this unit of work sees it: committed, or a system account it inserted itself."""
        account = self._store.accounts.get(account_id)
        return account or next((a for a in self.created.values() if a.id == account_id), None)

    async def get(self, tenant_id: UUID, account_id: UUID) -> Account | None:
        account = self._row(account_id)
        return copy.deepcopy(account) if account is not None and account.tenant_id == tenant_id else None

    async def lock(self, tenant_id: UUID, account_ids: Sequence[UUID]) -> dict[UUID, Account]:
        found = {}
        for account_id in sorted(set(account_ids)):
            account = self._row(account_id)
            if account is None or account.tenant_id != tenant_id:
                continue
            await self._session.hold(account_id)
            current = self._row(account_id) or account  # re-read: a commit may have replaced it while we waited
            found[account_id] = self._pending.mine(account_id) or copy.deepcopy(current)
        return found

    async def lock_system(self, tenant_id: UUID, kind: str, currency: str) -> Account:
        # One of the account's rows, picked at random the first time, then kept for this unit of work (as on
        # PostgreSQL: a row a unit of work has locked stays its row).
        shard = self._shards.setdefault((tenant_id, kind, currency), random.randrange(SYSTEM_SHARDS))
        slot = (tenant_id, kind, currency, shard)
        while True:
            if slot in self.created:
                return (await self.lock(tenant_id, [self.created[slot].id]))[self.created[slot].id]
            committed = next((a.id for a in self._store.accounts.values()
                              if not a.is_user and (a.tenant_id, a.kind, a.currency, a.shard) == slot), None)
            if committed is not None:
                return (await self.lock(tenant_id, [committed]))[committed]
            pending = self._store.pending_system.get(slot)
            if pending is None:
                now = datetime.now(UTC)
                account = Account(id=new_id(), tenant_id=tenant_id, kind=kind, currency=currency, shard=shard,
                                  created_at=now, updated_at=now)
                self._store.pending_system[slot] = self.created[slot] = account
                await self._session.hold(account.id)
                return copy.deepcopy(account)
            await self._session.wait_for(pending.id)

    async def lock_systems(self, tenant_id: UUID, kinds: Sequence[str], currency: str) -> list[Account]:
        assert len(set(kinds)) == len(kinds), "each system account once"
        return [await self.lock_system(tenant_id, kind, currency) for kind in kinds]

    async def list(self, tenant_id: UUID, *, user_id: str | None, status: AccountStatus | None = None,
                   metadata: Mapping[str, str] | None = None, limit: int, cursor: str | None) -> Page[Account]:
        rows = [a for a in self._store.accounts.values() if a.tenant_id == tenant_id and a.is_user]
        rows = [a for a in rows if (user_id is None or a.user_id == user_id) and (status is None or a.status == status)
                and holds(a.metadata, metadata)]
        after = account_key(decode_cursor(cursor, 2)) if cursor is not None else None
        items, more = page(rows, limit, after, key=lambda a: (a.created_at, a.id))
        return Page(items, encode_cursor(items[-1].created_at.isoformat(), str(items[-1].id)) if more else None)

    def apply(self) -> None:
        """Write the buffered accounts, and the system accounts this unit of work created, into the store."""
        for account in [*self.created.values(), *self._pending.changed()]:
            self._store.accounts[account.id] = copy.deepcopy(account)

    def release(self) -> None:
        """Forget the system accounts this unit of work was inserting: others may insert them now."""
        for slot in self.created:
            self._store.pending_system.pop(slot, None)

"""The ledger audit over the in-memory store: the invariants of API.md §4 and the entries' hash chains, as
`PgLedgerAudit` checks them."""

from __future__ import annotations

from collections import defaultdict
from uuid import UUID

from adapters.memory.state import StoreState
from core.holds import HoldStatus
from core.ledger import Entry, chain_problems, name_system_rows, row_label


class InMemoryLedgerAudit:
    """The `LedgerAudit` port over the memory store: the same invariants `PgLedgerAudit` checks."""

    def __init__(self, store: StoreState) -> None:
        self._store = store

    async def drift(self) -> list[str]:
        problems = []
        by_account: dict[UUID, list[Entry]] = defaultdict(list)
        by_posting: dict[UUID, list[Entry]] = defaultdict(list)
        for entry in self._store.entries:
            by_account[entry.account_id].append(entry)
            by_posting[entry.posting_id].append(entry)
        for account in self._store.accounts.values():
            entries = by_account[account.id]
            if account.balance != sum(e.amount for e in entries) or account.version != max(
                    (e.seq for e in entries), default=0):
                problems.append(f"account {account.id}: balance or version differs from its entries")
        for account_id, entries in by_account.items():
            running = 0
            for position, entry in enumerate(sorted(entries, key=lambda e: e.seq), 1):
                running += entry.amount
                if entry.balance_after != running or entry.seq != position:
                    problems.append(f"account {account_id}: entry {entry.id} (seq {entry.seq}) does not chain")
        for account in self._store.accounts.values():
            problems += chain_problems(account.id, sorted(by_account[account.id], key=lambda e: e.seq),
                                       account.last_entry_hash)
        totals: dict[tuple[UUID, str], int] = defaultdict(int)
        for account in self._store.accounts.values():
            totals[(account.tenant_id, account.currency)] += account.balance
        problems += [f"tenant {t} {c}: balances sum to {s}" for (t, c), s in totals.items() if s]
        for posting_id, entries in by_posting.items():
            if sum(e.amount for e in entries) or len({e.currency for e in entries}) != 1:
                problems.append(f"posting {posting_id}: entries do not balance in one currency")
        held: dict[UUID, int] = defaultdict(int)
        for hold in self._store.holds.values():
            if hold.status is HoldStatus.ACTIVE:
                held[hold.source_account_id] += hold.amount
        problems += [f"account {account.id}: held {account.held} but its active holds sum to {held[account.id]}"
                     for account in self._store.accounts.values() if account.held != held[account.id]]
        return name_system_rows(problems, {str(a.id): row_label(a.tenant_id, a.kind, a.currency, a.shard)
                                           for a in self._store.accounts.values() if not a.is_user})

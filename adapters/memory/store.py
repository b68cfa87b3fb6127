"""The in-memory store and its unit of work: per-row locks, buffered writes applied at commit."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from types import TracebackType
from uuid import UUID

import attrs

from adapters.local_locks import TURNS_PER_ACCOUNT, LocalLocks
from adapters.memory.accounts import MemoryAccounts
from adapters.memory.batches import MemoryBatches
from adapters.memory.dead_letters import MemoryDeadLetters
from adapters.memory.events import MemoryEvents
from adapters.memory.holds import MemoryHolds
from adapters.memory.idempotency import MemoryIdempotencyKeys
from adapters.memory.ledger import MemoryLedger
from adapters.memory.outbox import MemoryOutbox
from adapters.memory.payments import MemoryPayments
from adapters.memory.reconciliations import MemoryReconciliations
from adapters.memory.refunds import MemoryRefunds
from adapters.memory.state import MemorySession, StoreState
from adapters.memory.tenants import MemoryTenants
from adapters.memory.webhooks import MemoryWebhooks


@attrs.define
class InMemoryStore(StoreState):
    """Committed state, shared by every unit of work made from it; calling it makes one.

    A unit of work that declares accounts waits at most `wait_timeout` for its turn on them,
    as the PostgreSQL one does before it takes a connection.
    """

    wait_timeout: float = 5.0
    turns: LocalLocks = attrs.field(factory=lambda: LocalLocks(TURNS_PER_ACCOUNT))

    def __call__(self, *, read_only: bool = False, lock_accounts: Collection[UUID] = (),
                 optimistic: bool = False) -> InMemoryUnitOfWork:
        """The `UnitOfWorkFactory`. An `optimistic` unit of work is an ordinary one here, but that it refuses row
        locks: its reads lock nothing (`get`), and its writes apply all at once at the end, version-checked."""
        return InMemoryUnitOfWork(self, read_only=read_only, lock_accounts=lock_accounts, optimistic=optimistic)


class InMemoryUnitOfWork:
    """A unit of work over `InMemoryStore`; leaving it normally applies every buffered write at once
    (unless it is read-only), an exception drops them."""

    def __init__(self, store: InMemoryStore, *, read_only: bool = False, lock_accounts: Collection[UUID] = (),
                 optimistic: bool = False) -> None:
        self.store, self._read_only = store, read_only
        self._lock_accounts = lock_accounts
        self._my_turns: list[UUID] = []
        self._session = session = MemorySession(store, optimistic=optimistic and not read_only)
        self.accounts = MemoryAccounts(session)
        self.ledger = MemoryLedger(store)
        self.payments = MemoryPayments(session)
        self.refunds = MemoryRefunds(session)
        self.holds = MemoryHolds(session)
        self.dead_letters = MemoryDeadLetters(store)
        self.webhooks = MemoryWebhooks(session)
        self.outbox = MemoryOutbox(store)
        self.idempotency = MemoryIdempotencyKeys(store)
        self.tenants = MemoryTenants(session)
        self.reconciliations = MemoryReconciliations(store)
        self.events = MemoryEvents(store)
        self.batches = MemoryBatches(store)

    async def __aenter__(self) -> InMemoryUnitOfWork:
        deadline = asyncio.get_running_loop().time() + self.store.wait_timeout
        self._my_turns = await self.store.turns.acquire(self._lock_accounts, deadline=deadline)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc_type is None and not self._read_only:
                self._commit()
        finally:
            self._end()

    def _end(self) -> None:
        """Drop what was not committed and release every lock, as COMMIT or ROLLBACK does."""
        self.accounts.release()
        self.tenants.release()
        self.idempotency.release()
        self._session.release()
        self.store.turns.release(self._my_turns)
        self._my_turns = []

    def _commit(self) -> None:
        """Check what PostgreSQL's constraints would refuse, then apply every write: all or nothing."""
        self.idempotency.check()
        self.payments.check()
        self.batches.check()
        for repository in (self.tenants, self.accounts, self.ledger, self.payments, self.refunds, self.holds,
                           self.dead_letters, self.webhooks, self.outbox, self.idempotency, self.reconciliations,
                           self.batches):
            repository.apply()

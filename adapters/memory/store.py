"""The in-memory store and its unit of work: per-row locks, buffered writes applied at commit."""

from __future__ import annotations

from types import TracebackType

import attrs

from adapters.memory.accounts import MemoryAccounts
from adapters.memory.dead_letters import MemoryDeadLetters
from adapters.memory.idempotency import MemoryIdempotencyKeys
from adapters.memory.ledger import MemoryLedger
from adapters.memory.outbox import MemoryOutbox
from adapters.memory.payments import MemoryPayments
from adapters.memory.refunds import MemoryRefunds
from adapters.memory.state import MemorySession, StoreState
from adapters.memory.tenants import MemoryTenants
from adapters.memory.webhooks import MemoryWebhooks


@attrs.define
class InMemoryStore(StoreState):
    """Committed state, shared by every unit of work made from it; calling it makes one."""

    def __call__(self, *, read_only: bool = False) -> InMemoryUnitOfWork:
        """The `UnitOfWorkFactory`."""
        return InMemoryUnitOfWork(self, read_only=read_only)


class InMemoryUnitOfWork:
    """A unit of work over `InMemoryStore`; leaving it normally applies every buffered write at once
    (unless it is read-only), an exception drops them."""

    def __init__(self, store: StoreState, *, read_only: bool = False) -> None:
        self.store, self._read_only = store, read_only
        self._session = session = MemorySession(store)
        self.accounts = MemoryAccounts(session)
        self.ledger = MemoryLedger(store)
        self.payments = MemoryPayments(session)
        self.refunds = MemoryRefunds(session)
        self.dead_letters = MemoryDeadLetters(store)
        self.webhooks = MemoryWebhooks(session)
        self.outbox = MemoryOutbox(store)
        self.idempotency = MemoryIdempotencyKeys(store)
        self.tenants = MemoryTenants(session)

    async def __aenter__(self) -> InMemoryUnitOfWork:
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

    def _commit(self) -> None:
        """Check what PostgreSQL's constraints would refuse, then apply every write: all or nothing."""
        self.idempotency.check()
        self.payments.check()
        for repository in (self.tenants, self.accounts, self.ledger, self.payments, self.refunds,
                           self.dead_letters, self.webhooks, self.outbox, self.idempotency):
            repository.apply()

"""The unit of work: one transaction and the repositories that use it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from types import TracebackType
from typing import Protocol, TypeVar
from uuid import UUID

from core.ports.batches import Batches
from core.ports.holds import Holds
from core.ports.idempotency import IdempotencyKeys
from core.ports.ledger import Accounts, Ledger
from core.ports.outbox import Events, Outbox
from core.ports.payments import Payments, Refunds
from core.ports.reconciliations import Reconciliations
from core.ports.tenants import Tenants
from core.ports.webhooks import Webhooks
from core.ports.work import DeadLetters

T = TypeVar("T")
#: What an adapter raises when work in an optimistic unit of work asks for a row lock (a bug in that work: outside a
#: transaction the lock would be released at once and protect nothing).
NO_LOCK_WHEN_OPTIMISTIC = "an optimistic unit of work takes no row lock: read with `get`, write version-checked"


class UnitOfWork(Protocol):
    """One database transaction and the repositories that use it.

    Used as `async with uow_factory() as uow:`; leaving the block normally writes
    everything buffered and commits, an exception rolls back. Leaving it (the
    commit) raises `ConcurrencyConflict` on a serialization failure or deadlock
    (the whole unit of work may then be retried) and `Unavailable` when the store
    cannot be reached. Entering it waits a bounded time (for a connection, for its
    turn on the accounts it declared) and raises `Unavailable` beyond: the caller
    sheds the request instead of queueing it without end.
    """

    @property
    def accounts(self) -> Accounts: ...

    @property
    def ledger(self) -> Ledger: ...

    @property
    def payments(self) -> Payments: ...

    @property
    def outbox(self) -> Outbox: ...

    @property
    def idempotency(self) -> IdempotencyKeys: ...

    @property
    def tenants(self) -> Tenants: ...

    @property
    def refunds(self) -> Refunds: ...

    @property
    def holds(self) -> Holds: ...

    @property
    def dead_letters(self) -> DeadLetters: ...

    @property
    def webhooks(self) -> Webhooks: ...

    @property
    def reconciliations(self) -> Reconciliations: ...

    @property
    def events(self) -> Events: ...

    @property
    def batches(self) -> Batches: ...

    async def __aenter__(self) -> UnitOfWork: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class UnitOfWorkFactory(Protocol):
    """Makes units of work; `read_only` ones may skip the transaction and never write.

    `lock_accounts` declares, before the unit of work starts, the accounts its work will
    lock: entering it then waits for its turn on them (FIFO per account, a bounded wait,
    `Unavailable` beyond) before it takes anything shared, so that requests piling onto
    one hot account hold no connection while they wait and cannot starve the others.
    Declaring is not locking: the work still locks them through `uow.accounts.lock`
    (and may lock accounts it did not declare, waiting for them as before). An adapter
    may take the declared accounts' row locks early, in the same statement as the
    idempotency claim (PostgreSQL does, to save a round trip), so work that declares
    accounts locks them before any other row.

    An `optimistic` unit of work locks nothing while it reads (an adapter may not even open a
    transaction for its reads): its work reads with `get`, never `lock`, and its writes must
    be version-checked (a payment's `save`), so that leaving it raises `ConcurrencyConflict`
    if what it read changed meanwhile. Its writes still land all or nothing. On PostgreSQL it
    spares two round trips (BEGIN and COMMIT) when its writes fit one statement. Asking it for a
    row lock raises `RuntimeError` (`NO_LOCK_WHEN_OPTIMISTIC`) on every adapter.
    """

    def __call__(self, *, read_only: bool = False, lock_accounts: Collection[UUID] = (),
                 optimistic: bool = False) -> UnitOfWork: ...


class Reads(Protocol):
    """Where one request's reads that may lag a little go (lists, statements, the events feed, balance history).

    `run(use_case)` runs it in a read-only unit of work, on a read replica while one is configured, up and close
    enough to the primary, else on the primary; what it answers is what the use case returns, and it raises what
    the use case raises. Reads that must see the caller's own writes (a resource by id, the current balance) do
    not come here. Successive runs of one `Reads` never go back from the primary to the replica, so that a result
    read in several parts (a statement's pages) is never older in a later part.
    """

    async def run(self, use_case: Callable[[UnitOfWork], Awaitable[T]]) -> T: ...

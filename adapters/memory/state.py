"""The committed state of the in-memory store, and the session through which a unit of work locks its rows."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Hashable
from uuid import UUID

import attrs

from core.accounts import Account
from core.batches import Batch
from core.events import OutboxMessage
from core.holds import Hold
from core.idempotency import IdempotencyRecord
from core.ledger import Entry
from core.payments import Payment, PaymentEvent
from core.ports.unit_of_work import NO_LOCK_WHEN_OPTIMISTIC
from core.reconciliation import Reconciliation
from core.refunds import Refund
from core.tenants import ApiKey, Tenant
from core.webhooks import Delivery, Subscription
from core.work import DeadLetter

SystemSlot = tuple[UUID, str, str, int]  # tenant, kind, currency, shard


@attrs.define
class StoreState:
    """Committed rows, shared by every unit of work of one store."""

    accounts: dict[UUID, Account] = attrs.field(factory=dict)
    entries: list[Entry] = attrs.field(factory=list)
    payments: dict[UUID, Payment] = attrs.field(factory=dict)
    events: dict[UUID, list[PaymentEvent]] = attrs.field(factory=lambda: defaultdict(list))
    outbox: list[OutboxMessage] = attrs.field(factory=list)
    idempotency: dict[tuple[UUID, str], IdempotencyRecord] = attrs.field(factory=dict)
    tenants: dict[str, Tenant] = attrs.field(factory=dict)
    keys: dict[bytes, ApiKey] = attrs.field(factory=dict)
    refunds: dict[UUID, Refund] = attrs.field(factory=dict)
    holds: dict[UUID, Hold] = attrs.field(factory=dict)
    dead_letters: dict[UUID, DeadLetter] = attrs.field(factory=dict)
    subscriptions: dict[UUID, Subscription] = attrs.field(factory=dict)
    deliveries: dict[UUID, Delivery] = attrs.field(factory=dict)
    reconciliations: dict[UUID, Reconciliation] = attrs.field(factory=dict)
    batches: dict[UUID, Batch] = attrs.field(factory=dict)
    #: Row locks by account id, and by ("tenant", name) for tenants being inserted.
    row_locks: dict[Hashable, asyncio.Lock] = attrs.field(factory=lambda: defaultdict(asyncio.Lock))
    key_locks: set[tuple[UUID, str]] = attrs.field(factory=set)
    #: Rows inserted by a unit of work still open: invisible to the others, which wait for
    #: it to end before inserting the same key (as PostgreSQL waits on a unique index).
    pending_system: dict[SystemSlot, Account] = attrs.field(factory=dict)
    pending_tenants: dict[str, Tenant] = attrs.field(factory=dict)


class MemorySession:
    """What the repositories of one unit of work share: the store's state and the row locks the unit
    of work holds on it, all released when it ends."""

    def __init__(self, state: StoreState, *, optimistic: bool = False) -> None:
        self.state, self.optimistic = state, optimistic
        self._held: dict[Hashable, asyncio.Lock] = {}

    async def hold(self, key: Hashable) -> None:
        """Take a row lock until the unit of work ends; taking one it already holds is a no-op. An optimistic unit of
        work takes none (`RuntimeError`)."""
        if self.optimistic:
            raise RuntimeError(NO_LOCK_WHEN_OPTIMISTIC)
        if key not in self._held:
            lock = self.state.row_locks[key]
            await lock.acquire()
            self._held[key] = lock

    async def wait_for(self, key: Hashable) -> None:
        """Wait until whoever holds the row lock `key` has ended."""
        async with self.state.row_locks[key]:
            pass

    def release(self) -> None:
        for lock in reversed(self._held.values()):
            lock.release()
        self._held.clear()

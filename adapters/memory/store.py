"""The in-memory store and unit of work: per-row locks, buffered writes applied at commit."""

from __future__ import annotations

import asyncio
import copy
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from datetime import UTC, datetime
from types import TracebackType
from uuid import UUID

import attrs

from adapters.cursor import decode_cursor, encode_cursor
from adapters.memory.paging import account_key, entry_key, page
from adapters.memory.repositories import (
    MemoryDeadLetters,
    MemoryIdempotencyKeys,
    MemoryOutbox,
    MemoryPayments,
    MemoryRefunds,
    MemoryTenants,
)
from adapters.memory.webhooks import MemoryWebhooks
from core.accounts import Account
from core.errors import ConcurrencyConflict, IdempotencyRequestInProgress
from core.events import OutboxMessage
from core.idempotency import IdempotencyRecord
from core.ids import new_id
from core.ledger import Entry
from core.payments import Payment, PaymentEvent
from core.ports import Page
from core.refunds import Refund
from core.tenants import ApiKey, Tenant
from core.webhooks import Delivery, Subscription
from core.work import DeadLetter

SystemSlot = tuple[UUID, str, str]


@attrs.define
class InMemoryStore:
    """Committed state, shared by every unit of work made from it."""

    accounts: dict[UUID, Account] = attrs.field(factory=dict)
    entries: list[Entry] = attrs.field(factory=list)
    payments: dict[UUID, Payment] = attrs.field(factory=dict)
    events: dict[UUID, list[PaymentEvent]] = attrs.field(factory=lambda: defaultdict(list))
    outbox: list[OutboxMessage] = attrs.field(factory=list)
    idempotency: dict[tuple[UUID, str], IdempotencyRecord] = attrs.field(factory=dict)
    tenants: dict[str, Tenant] = attrs.field(factory=dict)
    keys: dict[bytes, ApiKey] = attrs.field(factory=dict)
    refunds: dict[UUID, Refund] = attrs.field(factory=dict)
    dead_letters: dict[UUID, DeadLetter] = attrs.field(factory=dict)
    subscriptions: dict[UUID, Subscription] = attrs.field(factory=dict)
    deliveries: dict[UUID, Delivery] = attrs.field(factory=dict)
    #: Row locks by account id, and by ("tenant", name) for tenants being inserted.
    row_locks: dict[Hashable, asyncio.Lock] = attrs.field(factory=lambda: defaultdict(asyncio.Lock))
    key_locks: set[tuple[UUID, str]] = attrs.field(factory=set)
    #: Rows inserted by a unit of work still open: invisible to the others, which wait for
    #: it to end before inserting the same key (as PostgreSQL waits on a unique index).
    pending_system: dict[SystemSlot, Account] = attrs.field(factory=dict)
    pending_tenants: dict[str, Tenant] = attrs.field(factory=dict)

    def __call__(self, *, read_only: bool = False) -> InMemoryUnitOfWork:
        """The `UnitOfWorkFactory`."""
        return InMemoryUnitOfWork(self)


class _Accounts:
    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        self._uow, self._store = uow, uow.store
        self.new: dict[UUID, Account] = {}
        self.dirty: dict[UUID, Account] = {}
        self.created: dict[SystemSlot, Account] = {}  # system accounts this unit of work inserted

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
            await self._uow.hold(account_id)
            current = self._row(account_id) or account  # re-read: a commit may have replaced it while we waited
            found[account_id] = self.dirty.get(account_id) or copy.deepcopy(current)
        return found

    async def lock_system(self, tenant_id: UUID, kind: str, currency: str) -> Account:
        slot = (tenant_id, kind, currency)
        while True:
            if slot in self.created:
                return (await self.lock(tenant_id, [self.created[slot].id]))[self.created[slot].id]
            committed = next((a.id for a in self._store.accounts.values()
                              if not a.is_user and (a.tenant_id, a.kind, a.currency) == slot), None)
            if committed is not None:
                return (await self.lock(tenant_id, [committed]))[committed]
            pending = self._store.pending_system.get(slot)
            if pending is None:
                now = datetime.now(UTC)
                account = Account(id=new_id(), tenant_id=tenant_id, kind=kind, currency=currency,
                                  created_at=now, updated_at=now)
                self._store.pending_system[slot] = self.created[slot] = account
                await self._uow.hold(account.id)
                return copy.deepcopy(account)
            await self._uow.wait_for(pending.id)

    async def list(self, tenant_id: UUID, *, user_id: str | None, limit: int, cursor: str | None) -> Page[Account]:
        rows = [a for a in self._store.accounts.values() if a.tenant_id == tenant_id and a.is_user]
        rows = [a for a in rows if user_id is None or a.user_id == user_id]
        after = account_key(decode_cursor(cursor, 2)) if cursor is not None else None
        items, more = page(rows, limit, after, key=lambda a: (a.created_at, a.id))
        return Page(items, encode_cursor(items[-1].created_at.isoformat(), str(items[-1].id)) if more else None)

    def add(self, account: Account) -> None:
        self.new[account.id] = account

    def save(self, account: Account) -> None:
        if account.id not in self.new:
            self.dirty[account.id] = account


class _Ledger:
    def __init__(self, store: InMemoryStore) -> None:
        self._store = store
        self.new: list[Entry] = []

    def add(self, entries: Sequence[Entry]) -> None:
        self.new.extend(entries)

    async def list(self, tenant_id: UUID, account_id: UUID, *, limit: int, cursor: str | None) -> Page[Entry]:
        rows = [e for e in self._store.entries if e.account_id == account_id and e.tenant_id == tenant_id]
        after = entry_key(decode_cursor(cursor, 1)) if cursor is not None else None
        items, more = page(rows, limit, after, key=lambda e: (e.seq,))
        return Page(items, encode_cursor(items[-1].seq) if more else None)


class InMemoryUnitOfWork:
    """A unit of work over `InMemoryStore`; commit applies every buffered write at once and ends it."""

    def __init__(self, store: InMemoryStore) -> None:
        self.store = store
        self.accounts = _Accounts(self)
        self.ledger = _Ledger(store)
        self.payments = MemoryPayments(self)
        self.refunds = MemoryRefunds(self)
        self.dead_letters = MemoryDeadLetters(store)
        self.webhooks = MemoryWebhooks(self)
        self.outbox = MemoryOutbox()
        self.idempotency = MemoryIdempotencyKeys(self)
        self.tenants = MemoryTenants(self)
        self.on_exit: list[Callable[[], None]] = []
        self._held: dict[Hashable, asyncio.Lock] = {}
        self._ended = False

    async def hold(self, key: Hashable) -> None:
        """Take a row lock until the unit of work ends; taking one it already holds is a no-op."""
        if key not in self._held:
            lock = self.store.row_locks[key]
            await lock.acquire()
            self._held[key] = lock

    async def wait_for(self, key: Hashable) -> None:
        """Wait until whoever holds the row lock `key` has ended."""
        async with self.store.row_locks[key]:
            pass

    async def __aenter__(self) -> InMemoryUnitOfWork:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._end()

    def _end(self) -> None:
        """Drop what was not committed and release every lock, as COMMIT or ROLLBACK does."""
        if self._ended:
            return
        self._ended = True
        for slot in self.accounts.created:
            self.store.pending_system.pop(slot, None)
        for name in self.tenants.created:
            self.store.pending_tenants.pop(name, None)
        self.store.key_locks.difference_update(self.idempotency.claimed)
        for release in self.on_exit:
            release()
        for lock in reversed(self._held.values()):
            lock.release()
        self._held.clear()

    async def commit(self) -> None:
        if self._ended:
            raise RuntimeError("this unit of work has already ended")
        store = self.store
        for record in self.idempotency.new:
            live = store.idempotency.get((record.request.tenant_id, record.request.key))
            if live is not None and live.expires_at > record.created_at:
                raise IdempotencyRequestInProgress("this Idempotency-Key was stored by a concurrent request")
        for payment in self.payments.dirty.values():
            stored = store.payments.get(payment.id)
            if stored is None or stored.version != payment.stored_version or not payment.events:
                raise ConcurrencyConflict("the payment changed since it was read; retry")
        store.tenants.update(self.tenants.created)
        created = {account.id: account for account in self.accounts.created.values()}
        for account in [*created.values(), *self.accounts.new.values(), *self.accounts.dirty.values()]:
            store.accounts[account.id] = copy.deepcopy(account)
        store.entries.extend(self.ledger.new)
        for payment in [*self.payments.new, *self.payments.dirty.values()]:
            store.events[payment.id].extend(payment.events)
            stored = copy.deepcopy(payment)
            stored.events = []
            store.payments[payment.id] = stored
        for refund in [*self.refunds.new.values(), *self.refunds.dirty.values()]:
            store.refunds[refund.id] = copy.deepcopy(refund)
        for letter in self.dead_letters.new:
            store.dead_letters[letter.id] = letter
        for letter in self.dead_letters.retried:
            store.dead_letters[letter.id] = attrs.evolve(letter, retried_at=datetime.now(UTC))
        self.webhooks.apply()
        store.outbox.extend(self.outbox.new)
        for slot, record in self.idempotency.expired.items():
            if store.idempotency.get(slot) is record:
                del store.idempotency[slot]
        for record in self.idempotency.new:
            store.idempotency[(record.request.tenant_id, record.request.key)] = record
        for key in self.tenants.new_keys:
            store.keys[key.key_hash] = key
        self._end()

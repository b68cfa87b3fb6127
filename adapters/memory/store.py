"""The in-memory store and unit of work: per-account locks, buffered writes applied at commit."""

from __future__ import annotations

import asyncio
import copy
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TypeVar
from uuid import UUID

import attrs

from adapters.memory.cursor import decode_cursor, encode_cursor
from core.accounts import Account
from core.errors import IdempotencyRequestInProgress
from core.events import OutboxMessage
from core.idempotency import IdempotencyRecord, IdempotentRequest
from core.ids import new_id
from core.ledger import Entry
from core.payments import Payment, PaymentEvent
from core.ports import Page
from core.tenants import ApiKey, Tenant

_T = TypeVar("_T")


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
    row_locks: dict[UUID, asyncio.Lock] = attrs.field(factory=lambda: defaultdict(asyncio.Lock))
    key_locks: set[tuple[UUID, str]] = attrs.field(factory=set)

    def __call__(self, *, read_only: bool = False) -> InMemoryUnitOfWork:
        """The `UnitOfWorkFactory`."""
        return InMemoryUnitOfWork(self)


class _Accounts:
    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        self._uow, self._store = uow, uow.store
        self.new: dict[UUID, Account] = {}
        self.dirty: dict[UUID, Account] = {}

    async def get(self, tenant_id: UUID, account_id: UUID) -> Account | None:
        account = self._store.accounts.get(account_id)
        return copy.deepcopy(account) if account is not None and account.tenant_id == tenant_id else None

    async def lock(self, tenant_id: UUID, account_ids: Sequence[UUID]) -> dict[UUID, Account]:
        found = {}
        for account_id in sorted(set(account_ids)):
            if account_id in self.new:
                found[account_id] = self.new[account_id]
                continue
            account = self._store.accounts.get(account_id)
            if account is None or account.tenant_id != tenant_id:
                continue
            await self._uow.hold(self._store.row_locks[account_id])
            found[account_id] = self.dirty.get(account_id) or copy.deepcopy(self._store.accounts[account_id])
        return found

    async def lock_system(self, tenant_id: UUID, kind: str, currency: str) -> Account:
        for account in list(self._store.accounts.values()) + list(self.new.values()):
            if (account.tenant_id, account.kind, account.currency) == (tenant_id, kind, currency):
                return (await self.lock(tenant_id, [account.id]))[account.id]
        now = datetime.now(UTC)
        account = Account(id=new_id(), tenant_id=tenant_id, kind=kind, currency=currency, created_at=now, updated_at=now)
        self._store.accounts[account.id] = account  # system accounts exist once created, as with ON CONFLICT
        return (await self.lock(tenant_id, [account.id]))[account.id]

    async def list(self, tenant_id: UUID, *, user_id: str | None, limit: int, cursor: str | None) -> Page[Account]:
        rows = [a for a in self._store.accounts.values() if a.tenant_id == tenant_id and a.is_user]
        rows = [a for a in rows if user_id is None or a.user_id == user_id]
        return _page(rows, limit, cursor, key=lambda a: (a.created_at.isoformat(), str(a.id)), arity=2)

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
        return _page(rows, limit, cursor, key=lambda e: (e.seq,), arity=1)


class _Payments:
    def __init__(self, store: InMemoryStore) -> None:
        self._store = store
        self.new: list[Payment] = []

    async def get(self, tenant_id: UUID, payment_id: UUID) -> Payment | None:
        payment = self._store.payments.get(payment_id)
        return copy.deepcopy(payment) if payment is not None and payment.tenant_id == tenant_id else None

    def add(self, payment: Payment) -> None:
        self.new.append(payment)

    async def events(self, tenant_id: UUID, payment_id: UUID) -> list[PaymentEvent]:
        return [e for e in self._store.events.get(payment_id, []) if e.tenant_id == tenant_id]


class _Outbox:
    def __init__(self) -> None:
        self.new: list[OutboxMessage] = []

    def add(self, message: OutboxMessage) -> None:
        self.new.append(message)


class _Idempotency:
    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        self._uow, self._store = uow, uow.store
        self.new: list[IdempotencyRecord] = []

    async def claim(self, request: IdempotentRequest, now: datetime) -> IdempotencyRecord | None:
        slot = (request.tenant_id, request.key)
        if slot in self._store.key_locks:
            raise IdempotencyRequestInProgress("a request with this Idempotency-Key is still in progress")
        self._store.key_locks.add(slot)
        self._uow.on_exit.append(lambda: self._store.key_locks.discard(slot))
        record = self._store.idempotency.get(slot)
        return record if record is not None and record.expires_at > now else None

    def add(self, record: IdempotencyRecord) -> None:
        self.new.append(record)


class _Tenants:
    def __init__(self, store: InMemoryStore) -> None:
        self._store = store
        self.new_keys: list[ApiKey] = []

    async def get_or_create(self, name: str, now: datetime) -> Tenant:
        return self._store.tenants.setdefault(name, Tenant(id=new_id(), name=name, created_at=now))

    async def key_by_hash(self, key_hash: bytes) -> ApiKey | None:
        return self._store.keys.get(key_hash)

    def add_key(self, key: ApiKey) -> None:
        self.new_keys.append(key)


class InMemoryUnitOfWork:
    """A unit of work over `InMemoryStore`; commit applies every buffered write at once."""

    def __init__(self, store: InMemoryStore) -> None:
        self.store = store
        self.accounts = _Accounts(self)
        self.ledger = _Ledger(store)
        self.payments = _Payments(store)
        self.outbox = _Outbox()
        self.idempotency = _Idempotency(self)
        self.tenants = _Tenants(store)
        self.on_exit: list[Callable[[], None]] = []
        self._held: list[asyncio.Lock] = []

    async def hold(self, lock: asyncio.Lock) -> None:
        await lock.acquire()
        self._held.append(lock)

    async def __aenter__(self) -> InMemoryUnitOfWork:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for release in self.on_exit:
            release()
        for lock in reversed(self._held):
            lock.release()
        self._held.clear()

    async def commit(self) -> None:
        store = self.store
        for record in self.idempotency.new:
            slot = (record.request.tenant_id, record.request.key)
            live = store.idempotency.get(slot)
            if live is not None and live.expires_at > record.created_at:
                raise IdempotencyRequestInProgress("this Idempotency-Key was stored by a concurrent request")
        for account in [*self.accounts.new.values(), *self.accounts.dirty.values()]:
            store.accounts[account.id] = copy.deepcopy(account)
        store.entries.extend(self.ledger.new)
        for payment in self.payments.new:
            store.events[payment.id].extend(payment.events)
            payment.events = []
            store.payments[payment.id] = copy.deepcopy(payment)
        store.outbox.extend(self.outbox.new)
        for record in self.idempotency.new:
            store.idempotency[(record.request.tenant_id, record.request.key)] = record
        for key in self.tenants.new_keys:
            store.keys[key.key_hash] = key


class InMemoryLedgerAudit:
    """The `LedgerAudit` port over the memory store."""

    def __init__(self, store: InMemoryStore) -> None:
        self._store = store

    async def drift(self) -> list[str]:
        problems = []
        by_account: dict[UUID, list[Entry]] = defaultdict(list)
        for entry in self._store.entries:
            by_account[entry.account_id].append(entry)
        totals: dict[tuple[UUID, str], int] = defaultdict(int)
        for account in self._store.accounts.values():
            entries = sorted(by_account[account.id], key=lambda e: e.seq)
            running = 0
            for entry in entries:
                running += entry.amount
                if entry.balance_after != running:
                    problems.append(f"account {account.id}: entry {entry.id} balance_after does not chain")
                    break
            if account.balance != sum(e.amount for e in entries):
                problems.append(f"account {account.id}: balance differs from the sum of its entries")
            totals[(account.tenant_id, account.currency)] += account.balance
        problems += [f"tenant {t} {c}: balances sum to {s}, not 0" for (t, c), s in totals.items() if s]
        return problems


def _page(rows: list[_T], limit: int, cursor: str | None, *, key: Callable[[_T], tuple[Any, ...]], arity: int) -> Page[_T]:
    """Newest first by `key`, resuming strictly after the cursor's key."""
    rows = sorted(rows, key=key, reverse=True)
    if cursor is not None:
        after = tuple(decode_cursor(cursor, arity))
        rows = [r for r in rows if key(r) < after]
    page = rows[:limit]
    return Page(page, encode_cursor(*key(page[-1])) if len(rows) > limit else None)

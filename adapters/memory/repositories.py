"""The in-memory payments, outbox, idempotency-key and tenant repositories of a unit of work."""

from __future__ import annotations

import builtins
import copy
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from adapters.cursor import time_id_cursor, time_id_key
from adapters.memory.paging import page
from core.errors import IdempotencyRequestInProgress
from core.events import OutboxMessage
from core.idempotency import IdempotencyRecord, IdempotentRequest
from core.ids import new_id
from core.payments import Payment, PaymentEvent
from core.ports import Page, PaymentFilter
from core.refunds import Refund
from core.tenants import ApiKey, Tenant
from core.work import DeadLetter

if TYPE_CHECKING:
    from adapters.memory.store import InMemoryStore, InMemoryUnitOfWork


class MemoryPayments:
    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        self._uow, self._store = uow, uow.store
        self.new: list[Payment] = []
        self.dirty: dict[UUID, Payment] = {}

    async def get(self, tenant_id: UUID, payment_id: UUID) -> Payment | None:
        payment = self._store.payments.get(payment_id)
        return copy.deepcopy(payment) if payment is not None and payment.tenant_id == tenant_id else None

    async def lock(self, tenant_id: UUID, payment_id: UUID) -> Payment | None:
        if await self.get(tenant_id, payment_id) is None:
            return None
        await self._uow.hold(("payment", payment_id))
        return self.dirty.get(payment_id) or await self.get(tenant_id, payment_id)

    async def list(self, tenant_id: UUID, where: PaymentFilter, *, limit: int, cursor: str | None) -> Page[Payment]:
        rows = [p for p in self._store.payments.values() if p.tenant_id == tenant_id and _matches(p, where)]
        after = time_id_key(cursor) if cursor is not None else None
        items, more = page(rows, limit, after, key=lambda p: (p.created_at, p.id))
        return Page([copy.deepcopy(p) for p in items],
                    time_id_cursor(items[-1].created_at, items[-1].id) if more else None)

    def add(self, payment: Payment) -> None:
        self.new.append(payment)

    def save(self, payment: Payment) -> None:
        if all(payment is not new for new in self.new):
            self.dirty[payment.id] = payment

    async def events(self, tenant_id: UUID, payment_id: UUID) -> builtins.list[PaymentEvent]:
        events = [e for e in self._store.events.get(payment_id, []) if e.tenant_id == tenant_id]
        return sorted(events, key=lambda e: e.sequence)


def _matches(p: Payment, where: PaymentFilter) -> bool:
    return ((where.status is None or p.status == where.status)
            and (where.payment_type is None or p.payment_type == where.payment_type)
            and (where.account_id is None or where.account_id in (p.source_account_id, p.destination_account_id))
            and (where.provider is None or p.provider == where.provider)
            and (where.created_after is None or p.created_at >= where.created_after)
            and (where.created_before is None or p.created_at < where.created_before))


class MemoryRefunds:
    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        self._uow, self._store = uow, uow.store
        self.new: dict[UUID, Refund] = {}
        self.dirty: dict[UUID, Refund] = {}

    async def lock(self, tenant_id: UUID, refund_id: UUID) -> Refund | None:
        refund = self._store.refunds.get(refund_id)
        if refund is None or refund.tenant_id != tenant_id:
            return None
        await self._uow.hold(("refund", refund_id))
        return self.dirty.get(refund_id) or copy.deepcopy(self._store.refunds[refund_id])

    async def for_payment(self, tenant_id: UUID, payment_id: UUID) -> builtins.list[Refund]:
        mine = [r for r in self._store.refunds.values() if r.tenant_id == tenant_id and r.payment_id == payment_id]
        return [copy.deepcopy(r) for r in sorted(mine, key=lambda r: (r.created_at, r.id), reverse=True)]

    async def list(self, tenant_id: UUID, payment_id: UUID, *, limit: int, cursor: str | None) -> Page[Refund]:
        after = time_id_key(cursor) if cursor is not None else None
        items, more = page(await self.for_payment(tenant_id, payment_id), limit, after,
                           key=lambda r: (r.created_at, r.id))
        return Page(items, time_id_cursor(items[-1].created_at, items[-1].id) if more else None)

    def add(self, refund: Refund) -> None:
        self.new[refund.id] = refund

    def save(self, refund: Refund) -> None:
        if refund.id not in self.new:
            self.dirty[refund.id] = refund


class MemoryDeadLetters:
    def __init__(self, store: InMemoryStore) -> None:
        self._store = store
        self.new: list[DeadLetter] = []
        self.retried: list[DeadLetter] = []

    def add(self, letter: DeadLetter) -> None:
        self.new.append(letter)

    async def list(self, *, limit: int) -> builtins.list[DeadLetter]:
        return sorted(self._store.dead_letters.values(), key=lambda x: (x.created_at, x.id), reverse=True)[:limit]

    async def get(self, letter_id: UUID) -> DeadLetter | None:
        return self._store.dead_letters.get(letter_id)

    def mark_retried(self, letter: DeadLetter) -> None:
        self.retried.append(letter)


class MemoryOutbox:
    def __init__(self) -> None:
        self.new: list[OutboxMessage] = []

    def add(self, message: OutboxMessage) -> None:
        self.new.append(message)


class MemoryIdempotencyKeys:
    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        self._uow, self._store = uow, uow.store
        self.new: list[IdempotencyRecord] = []
        self.claimed: set[tuple[UUID, str]] = set()
        self.expired: dict[tuple[UUID, str], IdempotencyRecord] = {}  # deleted at commit, as PostgreSQL does

    async def claim(self, request: IdempotentRequest, now: datetime) -> IdempotencyRecord | None:
        slot = (request.tenant_id, request.key)
        if slot not in self.claimed:  # a transaction may take its own advisory lock again
            if slot in self._store.key_locks:
                raise IdempotencyRequestInProgress("a request with this Idempotency-Key is still in progress")
            self._store.key_locks.add(slot)
            self.claimed.add(slot)
        record = self._store.idempotency.get(slot)
        if record is not None and record.expires_at <= now:
            self.expired[slot] = record
            return None
        return record

    def add(self, record: IdempotencyRecord) -> None:
        self.new.append(record)


class MemoryTenants:
    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        self._uow, self._store = uow, uow.store
        self.created: dict[str, Tenant] = {}
        self.new_keys: list[ApiKey] = []

    async def get_or_create(self, name: str, now: datetime) -> Tenant:
        while True:
            tenant = self.created.get(name) or self._store.tenants.get(name)
            if tenant is not None:
                return tenant
            if name not in self._store.pending_tenants:
                tenant = Tenant(id=new_id(), name=name, created_at=now)
                self._store.pending_tenants[name] = self.created[name] = tenant
                await self._uow.hold(("tenant", name))
                return tenant
            await self._uow.wait_for(("tenant", name))

    async def key_by_hash(self, key_hash: bytes) -> ApiKey | None:
        return self._store.keys.get(key_hash)

    def add_key(self, key: ApiKey) -> None:
        self.new_keys.append(key)

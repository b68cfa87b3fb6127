"""The in-memory payments, outbox, idempotency-key and tenant repositories of a unit of work."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from core.errors import IdempotencyRequestInProgress
from core.events import OutboxMessage
from core.idempotency import IdempotencyRecord, IdempotentRequest
from core.ids import new_id
from core.payments import Payment, PaymentEvent
from core.tenants import ApiKey, Tenant

if TYPE_CHECKING:
    from adapters.memory.store import InMemoryStore, InMemoryUnitOfWork


class MemoryPayments:
    def __init__(self, store: InMemoryStore) -> None:
        self._store = store
        self.new: list[Payment] = []

    async def get(self, tenant_id: UUID, payment_id: UUID) -> Payment | None:
        payment = self._store.payments.get(payment_id)
        return copy.deepcopy(payment) if payment is not None and payment.tenant_id == tenant_id else None

    def add(self, payment: Payment) -> None:
        self.new.append(payment)

    async def events(self, tenant_id: UUID, payment_id: UUID) -> list[PaymentEvent]:
        events = [e for e in self._store.events.get(payment_id, []) if e.tenant_id == tenant_id]
        return sorted(events, key=lambda e: e.sequence)


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

"""In-memory outbox feed, task queue and lease, with the semantics of their real adapters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from uuid import UUID

import attrs

from adapters.memory.store import InMemoryStore
from core.events import ClaimedBatch, OutboxMessage, work_for
from core.webhooks import DeliveryRef
from core.work import PAYMENT, REFUND, WorkItem


class InMemoryOutboxFeed:
    """The `OutboxFeed` port over `InMemoryStore.outbox`; claimed rows are hidden from other claims."""

    def __init__(self, store: InMemoryStore) -> None:
        self._store = store
        self.published: set[UUID] = set()
        self.published_at: dict[UUID, datetime] = {}
        self._claimed: set[UUID] = set()

    @asynccontextmanager
    async def claim(self, limit: int) -> AsyncIterator[ClaimedBatch]:
        pending = [m for m in self._store.outbox if m.id not in self.published and m.id not in self._claimed]
        claim = ClaimedBatch(sorted(pending, key=lambda m: (m.created_at, m.id))[:limit])
        ids = {m.id for m in claim.messages}
        self._claimed |= ids
        try:
            yield claim
            if claim.published:
                self.published |= ids
                self.published_at.update(dict.fromkeys(ids, datetime.now(UTC)))
        finally:
            self._claimed -= ids


class InMemoryTaskQueue:
    """The `TaskQueue` port: remembers what was enqueued, in order, with each work item's delay."""

    def __init__(self) -> None:
        self.events: list[OutboxMessage] = []
        self.work: list[tuple[WorkItem, float]] = []
        self.deliveries: list[DeliveryRef] = []
        self.delivery_delays: list[float] = []

    async def publish_events(self, messages: Sequence[OutboxMessage]) -> None:
        await asyncio.sleep(0)
        self.events.extend(messages)
        self.work += [(item, 0.0) for item in map(work_for, messages) if item is not None]

    async def enqueue_work(self, items: Sequence[WorkItem], *, delay_seconds: float = 0.0) -> None:
        await asyncio.sleep(0)
        self.work += [(item, delay_seconds) for item in items]

    async def enqueue_deliveries(self, refs: Sequence[DeliveryRef], *, delay_seconds: float = 0.0) -> None:
        await asyncio.sleep(0)
        self.deliveries.extend(refs)
        self.delivery_delays.extend([delay_seconds] * len(refs))


class InMemoryInFlight:
    """The `InFlight` port over `InMemoryStore`."""

    def __init__(self, store: InMemoryStore) -> None:
        self._store = store

    async def stuck(self, before: datetime, limit: int) -> list[WorkItem]:
        """As PostgreSQL's: up to `limit` of each kind, oldest first, skipping work waiting in the DLQ."""
        waiting = {x.target_id for x in self._store.dead_letters.values() if x.retried_at is None}
        payments = sorted((p for p in self._store.payments.values()
                           if p.is_external and p.status in ("pending", "processing") and p.id not in waiting
                           and max(p.updated_at, p.next_attempt_at or p.updated_at) < before),
                          key=lambda p: p.updated_at)[:limit]
        refunds = sorted((r for r in self._store.refunds.values()
                          if r.status == "pending" and r.id not in waiting
                          and max(r.updated_at, r.next_attempt_at or r.updated_at) < before),
                         key=lambda r: r.updated_at)[:limit]
        return [*(WorkItem(kind=PAYMENT, tenant_id=p.tenant_id, target_id=p.id, correlation_id=p.correlation_id)
                  for p in payments),
                *(WorkItem(kind=REFUND, tenant_id=r.tenant_id, target_id=r.id, correlation_id=r.correlation_id)
                  for r in refunds)]


@attrs.define
class _Held:
    owner: str
    token: int
    expires_at: datetime


class InMemoryLease:
    """The `Lease` port: fenced leases and reaping over `InMemoryStore.idempotency`."""

    def __init__(self, store: InMemoryStore, feed: InMemoryOutboxFeed | None = None) -> None:
        self._store = store
        self._feed = feed
        self._leases: dict[str, _Held] = {}

    async def acquire(self, name: str, owner: str, ttl_seconds: float) -> int | None:
        now = datetime.now(UTC)
        held = self._leases.get(name)
        if held is not None and held.owner != owner and held.expires_at >= now:
            return None
        token = held.token if held is not None and held.owner == owner else (held.token + 1 if held else 1)
        self._leases[name] = _Held(owner, token, now + timedelta(seconds=ttl_seconds))
        return token

    def _holds(self, name: str, owner: str, token: int) -> bool:
        held = self._leases.get(name)
        return held is not None and (held.owner, held.token) == (owner, token) and held.expires_at > datetime.now(UTC)

    async def purge_published_outbox(self, name: str, owner: str, token: int, before: datetime, limit: int) -> int:
        if not self._holds(name, owner, token) or self._feed is None:
            return 0
        old = [m for m in self._store.outbox if m.id in self._feed.published
               and self._feed.published_at.get(m.id, datetime.max.replace(tzinfo=UTC)) < before][:limit]
        for message in old:
            self._store.outbox.remove(message)
            self._feed.published.discard(message.id)
        return len(old)

    async def reap_idempotency_keys(self, name: str, owner: str, token: int, limit: int) -> int:
        now = datetime.now(UTC)
        if not self._holds(name, owner, token):
            return 0
        expired = [slot for slot, record in self._store.idempotency.items() if record.expires_at <= now][:limit]
        for slot in expired:
            del self._store.idempotency[slot]
        return len(expired)

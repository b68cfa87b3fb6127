"""The in-memory outbox (written in a unit of work, claimed by the relay), task queue and in-flight work."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from uuid import UUID

from adapters.memory.pending import Pending
from adapters.memory.state import StoreState
from adapters.memory.webhooks import enabled_listeners
from core.events import ClaimedBatch, OutboxMessage, work_for
from core.webhooks import DeliveryRef, delivery_batches
from core.work import PAYMENT, REFUND, WorkItem


class MemoryOutbox(Pending[OutboxMessage]):
    """The `Outbox` port: messages buffered in a unit of work, appended to `StoreState.outbox` at commit."""

    def apply(self) -> None:
        self._store.outbox.extend(self.new)


class InMemoryOutboxFeed:
    """The `OutboxFeed` port over `StoreState.outbox`; claimed rows are hidden from other claims."""

    def __init__(self, store: StoreState) -> None:
        self._store = store
        self.published: set[UUID] = set()
        self.published_at: dict[UUID, datetime] = {}
        self._claimed: set[UUID] = set()

    @asynccontextmanager
    async def claim(self, limit: int, *, listeners: bool = False) -> AsyncIterator[ClaimedBatch]:
        pending = [m for m in self._store.outbox if m.id not in self.published and m.id not in self._claimed]
        claim = ClaimedBatch(sorted(pending, key=lambda m: (m.created_at, m.id))[:limit])
        if listeners:
            claim.listeners = enabled_listeners(self._store, {m.tenant_id for m in claim.messages})
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
        #: The messages the refs went in, as the real queue groups them, each with its delay.
        self.delivery_messages: list[tuple[list[DeliveryRef], float]] = []

    async def publish_events(self, messages: Sequence[OutboxMessage], *, dispatch: bool = True) -> None:
        await asyncio.sleep(0)
        if dispatch:
            self.events.extend(messages)
        self.work += [(item, 0.0) for item in map(work_for, messages) if item is not None]

    async def enqueue_work(self, items: Sequence[WorkItem], *, delay_seconds: float = 0.0) -> None:
        await asyncio.sleep(0)
        self.work += [(item, delay_seconds) for item in items]

    async def enqueue_deliveries(self, refs: Sequence[DeliveryRef], *, delay_seconds: float = 0.0) -> None:
        await asyncio.sleep(0)
        self.deliveries.extend(refs)
        self.delivery_delays.extend([delay_seconds] * len(refs))
        self.delivery_messages += [(batch, delay_seconds) for batch in delivery_batches(refs)]


class InMemoryInFlight:
    """The `InFlight` port over `StoreState`."""

    def __init__(self, store: StoreState) -> None:
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

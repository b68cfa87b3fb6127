"""In-memory webhook subscriptions and deliveries, a scripted sender and a fixed resolver, for unit tests."""

from __future__ import annotations

import asyncio
import builtins
import copy
import ipaddress
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit
from uuid import UUID

import attrs

from adapters.cursor import time_id_cursor, time_id_key
from adapters.memory.paging import page
from core.ports import Page
from core.webhooks import Delivery, DeliveryRef, SendResult, Subscription, refused_addresses

if TYPE_CHECKING:
    from adapters.memory.store import InMemoryStore, InMemoryUnitOfWork


class MemoryWebhooks:
    """The `Webhooks` port over `InMemoryStore.subscriptions` and `.deliveries`."""

    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        self._uow, self._store = uow, uow.store
        self.new: dict[UUID, Subscription] = {}
        self.dirty: dict[UUID, Subscription] = {}
        self.removed: dict[UUID, Subscription] = {}
        self.new_deliveries: dict[UUID, Delivery] = {}
        self.dirty_deliveries: dict[UUID, Delivery] = {}

    async def get(self, tenant_id: UUID, subscription_id: UUID) -> Subscription | None:
        found = self._store.subscriptions.get(subscription_id)
        return copy.deepcopy(found) if found is not None and found.tenant_id == tenant_id else None

    async def lock(self, tenant_id: UUID, subscription_id: UUID) -> Subscription | None:
        if await self.get(tenant_id, subscription_id) is None:
            return None
        await self._uow.hold(("webhook", subscription_id))
        return self.dirty.get(subscription_id) or await self.get(tenant_id, subscription_id)

    async def list(self, tenant_id: UUID, *, limit: int, cursor: str | None) -> Page[Subscription]:
        mine = [copy.deepcopy(s) for s in self._store.subscriptions.values() if s.tenant_id == tenant_id]
        after = time_id_key(cursor) if cursor is not None else None
        items, more = page(mine, limit, after, key=lambda s: (s.created_at, s.id))
        return Page(items, time_id_cursor(items[-1].created_at, items[-1].id) if more else None)

    async def listening(self, tenant_id: UUID, event_type: str) -> builtins.list[Subscription]:
        return sorted((copy.deepcopy(s) for s in self._store.subscriptions.values()
                       if s.tenant_id == tenant_id and s.matches(event_type)), key=lambda s: s.id)

    def add(self, subscription: Subscription) -> None:
        self.new[subscription.id] = subscription

    def save(self, subscription: Subscription) -> None:
        if subscription.id not in self.new:
            self.dirty[subscription.id] = subscription

    def remove(self, subscription: Subscription) -> None:
        self.new.pop(subscription.id, None)
        self.dirty.pop(subscription.id, None)
        self.removed[subscription.id] = subscription

    async def fan_out(self, deliveries: builtins.list[Delivery]) -> builtins.list[DeliveryRef]:
        taken = {(d.subscription_id, d.event_id) for d in [*self._store.deliveries.values(),
                                                           *self.new_deliveries.values()]}
        refs = []
        for delivery in deliveries:  # a subscription deleted since it was read gets none (PostgreSQL's too)
            if delivery.subscription_id not in self._store.subscriptions:
                continue
            if (delivery.subscription_id, delivery.event_id) not in taken:
                taken.add((delivery.subscription_id, delivery.event_id))
                self.new_deliveries[delivery.id] = copy.deepcopy(delivery)
                refs.append(delivery.ref())
        return refs

    async def lock_delivery(self, tenant_id: UUID, delivery_id: UUID) -> Delivery | None:
        found = self._store.deliveries.get(delivery_id)
        if found is None or found.tenant_id != tenant_id:
            return None
        await self._uow.hold(("delivery", delivery_id))
        current = self._store.deliveries.get(delivery_id)
        return self.dirty_deliveries.get(delivery_id) or (copy.deepcopy(current) if current else None)

    async def deliveries(
        self, tenant_id: UUID, subscription_id: UUID, *, limit: int, cursor: str | None
    ) -> Page[Delivery]:
        mine = [copy.deepcopy(d) for d in self._store.deliveries.values()
                if d.tenant_id == tenant_id and d.subscription_id == subscription_id]
        after = time_id_key(cursor) if cursor is not None else None
        items, more = page(mine, limit, after, key=lambda d: (d.created_at, d.id))
        return Page(items, time_id_cursor(items[-1].created_at, items[-1].id) if more else None)

    def save_delivery(self, delivery: Delivery) -> None:
        self.dirty_deliveries[delivery.id] = delivery

    def apply(self) -> None:
        """Called by the unit of work's commit."""
        store = self._store
        for subscription in [*self.new.values(), *self.dirty.values()]:
            store.subscriptions[subscription.id] = copy.deepcopy(subscription)
        for delivery in [*self.new_deliveries.values(), *self.dirty_deliveries.values()]:
            if delivery.subscription_id in store.subscriptions:
                store.deliveries[delivery.id] = copy.deepcopy(delivery)
        for gone in self.removed:
            store.subscriptions.pop(gone, None)
            for delivery_id in [d.id for d in store.deliveries.values() if d.subscription_id == gone]:
                del store.deliveries[delivery_id]


class MemoryDueDeliveries:
    """The `DueDeliveries` port over an `InMemoryStore`."""

    def __init__(self, store: InMemoryStore) -> None:
        self._store = store

    async def claim_due(self, now: datetime, lease_seconds: float, limit: int) -> builtins.list[DeliveryRef]:
        locks = self._store.row_locks
        due = sorted((d for d in self._store.deliveries.values()
                      if d.status == "pending" and d.next_attempt_at is not None and d.next_attempt_at <= now
                      and not (("delivery", d.id) in locks and locks[("delivery", d.id)].locked())),  # SKIP LOCKED
                     key=lambda d: (d.next_attempt_at or now, d.id))[:limit]
        for delivery in due:
            delivery.next_attempt_at = now + timedelta(seconds=lease_seconds * 2 ** min(delivery.queued, 5))
            delivery.queued += 1
        return [d.ref() for d in due]


@attrs.frozen
class SentRequest:
    url: str
    body: bytes
    headers: dict[str, str]


class InMemoryWebhookSender:
    """The `WebhookSender` port without a network: records each POST and answers from a script.

    `answers[url]` is a list of status codes (or error strings, e.g. "timeout") consumed one per
    POST, the last one repeating; a URL with no script gets 200. A URL whose host `resolver` maps to
    a private address is refused, as the real sender's guard does, unless `allow_private`.
    """

    def __init__(self, *, resolver: FixedResolver | None = None, allow_private: bool = True) -> None:
        self.sent: builtins.list[SentRequest] = []
        self.answers: dict[str, builtins.list[int | str]] = {}
        self._resolver, self._allow_private = resolver, allow_private
        self.delivered = asyncio.Event()

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], *, within: float) -> SendResult:
        if not self._allow_private and self._resolver is not None:
            host = urlsplit(url).hostname or ""
            if refused := refused_addresses(await self._resolver.resolve(host)):
                return SendResult(error=f"refused: {host} resolves to a private address ({refused[0]})")
        self.sent.append(SentRequest(url, body, dict(headers)))
        self.delivered.set()
        script = self.answers.get(url) or [200]
        answer = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(answer, str):
            return SendResult(error=answer)
        return SendResult(status_code=answer, error=None if 200 <= answer < 300 else f"HTTP {answer}")


class FixedResolver:
    """The `Resolver` port from a table (host -> addresses); an IP literal resolves to itself."""

    def __init__(self, table: Mapping[str, builtins.list[str]] | None = None) -> None:
        self.table = dict(table or {})

    async def resolve(self, host: str) -> builtins.list[str]:
        if host in self.table:
            return builtins.list(self.table[host])
        try:
            return [str(ipaddress.ip_address(host.strip("[]")))]
        except ValueError:
            return []

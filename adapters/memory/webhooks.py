"""In-memory webhook subscriptions and deliveries, a scripted sender and a fixed resolver, for unit tests."""

from __future__ import annotations

import asyncio
import builtins
import copy
import ipaddress
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from urllib.parse import urlsplit
from uuid import UUID

import attrs

from adapters.memory.paging import time_id_page
from adapters.memory.state import MemorySession, StoreState
from adapters.memory.table import Table
from core.events import Listener
from core.ports import Page
from core.webhook_destinations import refused_addresses
from core.webhooks import Delivery, DeliveryRef, SendResult, Subscription


class MemoryWebhooks:
    """The `Webhooks` port over `StoreState.subscriptions` and `.deliveries`."""

    def __init__(self, session: MemorySession) -> None:
        self._store = session.state
        self._subscriptions = Table(session, session.state.subscriptions, "webhook")
        self._deliveries = Table(session, session.state.deliveries, "delivery")  # `pending`: saved deliveries
        self.new_deliveries: dict[UUID, Delivery] = {}  # fanned out: copies, overwritten by a later save
        self.removed: dict[UUID, Subscription] = {}
        self.add, self.save = self._subscriptions.pending.add, self._subscriptions.pending.save
        self.save_delivery = self._deliveries.pending.save
        self.lock, self.lock_delivery = self._subscriptions.lock, self._deliveries.lock

    async def get(self, tenant_id: UUID, subscription_id: UUID) -> Subscription | None:
        return self._subscriptions.get(tenant_id, subscription_id)

    async def list(self, tenant_id: UUID, *, limit: int, cursor: str | None) -> Page[Subscription]:
        mine = [copy.deepcopy(s) for s in self._store.subscriptions.values() if s.tenant_id == tenant_id]
        return time_id_page(mine, limit, cursor)

    async def listening(self, tenant_id: UUID, event_type: str) -> builtins.list[Subscription]:
        return sorted((copy.deepcopy(s) for s in self._store.subscriptions.values()
                       if s.tenant_id == tenant_id and s.matches(event_type)), key=lambda s: s.id)

    async def lock_deliveries(self, keys: Collection[tuple[UUID, UUID]]) -> builtins.list[Delivery]:
        locked = []
        for tenant_id, delivery_id in sorted(set(keys), key=lambda key: key[1]):  # ascending ids, as PostgreSQL
            if (delivery := await self.lock_delivery(tenant_id, delivery_id)) is not None:
                locked.append(delivery)
        return locked

    async def get_subscriptions(self, keys: Collection[tuple[UUID, UUID]]) -> builtins.list[Subscription]:
        found = (self._subscriptions.get(tenant_id, subscription_id) for tenant_id, subscription_id in set(keys))
        return sorted((s for s in found if s is not None), key=lambda s: s.id)

    def remove(self, subscription: Subscription) -> None:
        self._subscriptions.pending.drop(subscription.id)
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

    async def deliveries(
        self, tenant_id: UUID, subscription_id: UUID, *, limit: int, cursor: str | None
    ) -> Page[Delivery]:
        mine = [copy.deepcopy(d) for d in self._store.deliveries.values()
                if d.tenant_id == tenant_id and d.subscription_id == subscription_id]
        return time_id_page(mine, limit, cursor)

    def apply(self) -> None:
        """Write the buffered subscriptions and deliveries into the store (the unit of work's commit)."""
        store = self._store
        self._subscriptions.apply()
        for delivery in [*self.new_deliveries.values(), *self._deliveries.pending.changed()]:
            if delivery.subscription_id in store.subscriptions:
                store.deliveries[delivery.id] = copy.deepcopy(delivery)
        for gone in self.removed:
            store.subscriptions.pop(gone, None)
            for delivery_id in [d.id for d in store.deliveries.values() if d.subscription_id == gone]:
                del store.deliveries[delivery_id]


class MemoryDueDeliveries:
    """The `DueDeliveries` port over a store's `StoreState.deliveries`."""

    def __init__(self, store: StoreState) -> None:
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


def enabled_listeners(store: StoreState, tenant_ids: Collection[UUID]) -> builtins.list[Listener]:
    """The enabled subscriptions of `tenant_ids`, in id order (as PostgreSQL's `listeners`)."""
    return sorted((Listener(id=s.id, tenant_id=s.tenant_id, events=s.events)
                   for s in store.subscriptions.values() if s.tenant_id in tenant_ids and s.enabled),
                  key=lambda s: s.id)

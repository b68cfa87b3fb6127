"""Ports of webhook delivery: subscriptions and deliveries, the scheduler's due list, the sender and its resolver."""

from __future__ import annotations

import builtins
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Protocol
from uuid import UUID

from core.ports.paging import Page
from core.webhooks import Delivery, DeliveryRef, SendResult, Subscription


class Webhooks(Protocol):
    """A tenant's webhook subscriptions and their deliveries.

    `add`, `save`, `remove` and `save_delivery` are buffered until commit;
    `lock`/`lock_delivery` take row locks until the unit of work ends; `fan_out`
    writes at once, inside the unit of work's transaction.
    """

    async def get(self, tenant_id: UUID, subscription_id: UUID) -> Subscription | None: ...

    async def lock(self, tenant_id: UUID, subscription_id: UUID) -> Subscription | None: ...

    async def list(self, tenant_id: UUID, *, limit: int, cursor: str | None) -> Page[Subscription]:
        """Newest first. Raises `ValidationFailed` for a malformed cursor."""
        ...

    def add(self, subscription: Subscription) -> None: ...

    def save(self, subscription: Subscription) -> None: ...

    def remove(self, subscription: Subscription) -> None:
        """Delete the subscription and its delivery log at commit."""
        ...

    async def listening(self, tenant_id: UUID, event_type: str) -> builtins.list[Subscription]:
        """The tenant's enabled subscriptions that hear `event_type`."""
        ...

    async def fan_out(self, deliveries: builtins.list[Delivery]) -> builtins.list[DeliveryRef]:
        """Insert those of `deliveries` whose subscription has no delivery of that event yet (a
        redelivered event fans out once); the refs of the ones inserted."""
        ...

    async def lock_delivery(self, tenant_id: UUID, delivery_id: UUID) -> Delivery | None: ...

    async def lock_deliveries(self, keys: Collection[tuple[UUID, UUID]]) -> builtins.list[Delivery]:
        """The deliveries of `keys` (`(tenant_id, delivery_id)` pairs) that exist, each locked as `lock_delivery`
        locks one, in one round trip, in ascending id order (so two batches sharing rows never deadlock); this
        unit of work's own changes win over the stored rows. A key naming another tenant's delivery finds none."""
        ...

    async def get_subscriptions(self, keys: Collection[tuple[UUID, UUID]]) -> builtins.list[Subscription]:
        """The subscriptions of `keys` (`(tenant_id, subscription_id)` pairs) that exist, in one query, not locked,
        in ascending id order. A key naming another tenant's subscription finds none."""
        ...

    async def deliveries(
        self, tenant_id: UUID, subscription_id: UUID, *, limit: int, cursor: str | None
    ) -> Page[Delivery]:
        """Newest first. Raises `ValidationFailed` for a malformed cursor."""
        ...

    def save_delivery(self, delivery: Delivery) -> None: ...


class DueDeliveries(Protocol):
    """Pending webhook deliveries whose next attempt is due, for the scheduler."""

    async def claim_due(self, now: datetime, lease_seconds: float, limit: int) -> builtins.list[DeliveryRef]:
        """Up to `limit` pending deliveries due by `now`, oldest first, each held for `lease_seconds`
        doubled for each time it was queued since its last attempt began, up to 32 times (its next attempt
        time moves there, so concurrent schedulers never take the same one, and a backlog in the queue is
        not queued again every lease)."""
        ...


class WebhookSender(Protocol):
    """POSTs a delivery. Never raises for the receiver's failures: they come back in `SendResult`."""

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], *, within: float) -> SendResult:
        """A 2xx within `within` seconds is success; any other status, a timeout, a refused connection or
        a destination the SSRF guard refuses is a `SendResult` with `error` set."""
        ...


class Resolver(Protocol):
    """Name resolution for the SSRF guard."""

    async def resolve(self, host: str) -> builtins.list[str]:
        """The IP addresses `host` resolves to (itself if it is one); empty if it does not resolve."""
        ...

"""Manage webhook subscriptions (API.md §7): create, read, change, rotate the secret, delete, redeliver."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import attrs

from core.errors import NotFound, found
from core.ids import new_id
from core.ports import Clock, Page, UnitOfWork
from core.webhooks import Delivery, Subscription, new_secret


@attrs.frozen(kw_only=True)
class CreateSubscription:
    tenant_id: UUID
    url: str
    events: tuple[str, ...]
    description: str | None = None
    enabled: bool = True


async def create_subscription(cmd: CreateSubscription, *, uow: UnitOfWork, clock: Clock) -> Subscription:
    """A new subscription with a fresh `whsec_` secret (the caller shows it once). Check the URL first."""
    now = clock.now()
    subscription = Subscription(id=new_id(), tenant_id=cmd.tenant_id, url=cmd.url, events=cmd.events,
                                description=cmd.description, enabled=cmd.enabled, secret=new_secret(),
                                created_at=now, updated_at=now)
    uow.webhooks.add(subscription)
    return subscription


@attrs.frozen(kw_only=True)
class UpdateSubscription:
    """A partial update: None leaves a field unchanged; `clear_description` sets it to null."""

    tenant_id: UUID
    subscription_id: UUID
    url: str | None = None
    events: tuple[str, ...] | None = None
    enabled: bool | None = None
    description: str | None = None
    clear_description: bool = False


async def update_subscription(cmd: UpdateSubscription, *, uow: UnitOfWork, clock: Clock) -> Subscription:
    """Change the URL (checked first by the caller), the events heard, `enabled` or the description."""
    subscription = await _locked(uow, cmd.tenant_id, cmd.subscription_id)
    subscription.change(url=cmd.url, events=cmd.events, enabled=cmd.enabled, description=cmd.description,
                        clear_description=cmd.clear_description, now=clock.now())
    uow.webhooks.save(subscription)
    return subscription


async def rotate_secret(
    tenant_id: UUID, subscription_id: UUID, *, uow: UnitOfWork, clock: Clock, overlap: timedelta
) -> Subscription:
    """A new secret from now on; the old one keeps signing deliveries (next to the new one) for `overlap`."""
    subscription = await _locked(uow, tenant_id, subscription_id)
    subscription.rotate(new_secret(), clock.now(), overlap)
    uow.webhooks.save(subscription)
    return subscription


async def delete_subscription(tenant_id: UUID, subscription_id: UUID, *, uow: UnitOfWork) -> None:
    """Stop sending to it; its pending deliveries and delivery log go with it."""
    uow.webhooks.remove(await _locked(uow, tenant_id, subscription_id))


async def get_subscription(tenant_id: UUID, subscription_id: UUID, *, uow: UnitOfWork) -> Subscription:
    return found(await uow.webhooks.get(tenant_id, subscription_id), f"webhook {subscription_id}")


async def list_subscriptions(
    tenant_id: UUID, *, uow: UnitOfWork, limit: int, cursor: str | None
) -> Page[Subscription]:
    return await uow.webhooks.list(tenant_id, limit=limit, cursor=cursor)


async def list_deliveries(
    tenant_id: UUID, subscription_id: UUID, *, uow: UnitOfWork, limit: int, cursor: str | None
) -> Page[Delivery]:
    """The subscription's delivery log, newest first; `NotFound` for a subscription not the caller's."""
    await get_subscription(tenant_id, subscription_id, uow=uow)
    return await uow.webhooks.deliveries(tenant_id, subscription_id, limit=limit, cursor=cursor)


async def redeliver(
    tenant_id: UUID, subscription_id: UUID, delivery_id: UUID, *, uow: UnitOfWork, clock: Clock
) -> Delivery:
    """Send a delivery again as soon as a worker can, whatever its status (one more attempt after a give-up)."""
    delivery = await uow.webhooks.lock_delivery(tenant_id, delivery_id)
    if delivery is None or delivery.subscription_id != subscription_id:
        raise NotFound(f"delivery {delivery_id} of webhook {subscription_id} not found")
    delivery.redeliver(clock.now())
    uow.webhooks.save_delivery(delivery)
    return delivery


async def _locked(uow: UnitOfWork, tenant_id: UUID, subscription_id: UUID) -> Subscription:
    return found(await uow.webhooks.lock(tenant_id, subscription_id), f"webhook {subscription_id}")

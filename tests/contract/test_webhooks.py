"""Webhooks and DueDeliveries: the same contract on the in-memory and PostgreSQL adapters."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from core.errors import ValidationFailed
from core.ids import new_id
from core.ports import UnitOfWorkFactory
from core.webhooks import Delivery, DeliveryRef, Subscription, new_secret

# Far from the present, so a worker of another suite sharing the database never finds these due.
T0 = datetime(2090, 1, 1, tzinfo=UTC)


async def _tenant(uow_factory: UnitOfWorkFactory) -> UUID:
    async with uow_factory() as uow:
        tenant = await uow.tenants.get_or_create(f"hooks-{secrets.token_hex(4)}", T0)
    return tenant.id


def _subscription(tenant_id: UUID, events: tuple[str, ...], *, at: datetime = T0, enabled: bool = True
                  ) -> Subscription:
    return Subscription(id=new_id(), tenant_id=tenant_id, url="https://hooks.example.com/x", events=events,
                        description=None, enabled=enabled, secret=new_secret(), created_at=at, updated_at=at)


def _delivery(sub: Subscription, event_id: UUID, *, due: datetime = T0) -> Delivery:
    return Delivery(id=new_id(), tenant_id=sub.tenant_id, subscription_id=sub.id, event_id=event_id,
                    event_type="payment.completed", body='{"id":"x"}', next_attempt_at=due, correlation_id="c-1",
                    trace_context={"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}, created_at=T0,
                    updated_at=T0)


async def _subscribed(uow_factory: UnitOfWorkFactory) -> tuple[UUID, Subscription]:
    """A new tenant with one subscription to every event."""
    tenant = await _tenant(uow_factory)
    sub = _subscription(tenant, ("*",))
    async with uow_factory() as uow:
        uow.webhooks.add(sub)
    return tenant, sub


async def _one_delivery(uow_factory: UnitOfWorkFactory) -> tuple[UUID, Subscription, DeliveryRef]:
    """A new tenant, its subscription and one pending delivery to it, due at T0."""
    tenant, sub = await _subscribed(uow_factory)
    async with uow_factory() as uow:
        (ref,) = await uow.webhooks.fan_out([_delivery(sub, new_id())])
    return tenant, sub, ref


async def test_subscriptions_round_trip_page_and_stay_in_their_tenant(uow_factory: UnitOfWorkFactory) -> None:
    tenant, other = await _tenant(uow_factory), await _tenant(uow_factory)
    subs = [_subscription(tenant, ("*",), at=T0 + timedelta(seconds=n)) for n in range(3)]
    async with uow_factory() as uow:
        for sub in [*subs, _subscription(other, ("*",))]:
            uow.webhooks.add(sub)
    async with uow_factory(read_only=True) as uow:
        assert await uow.webhooks.get(tenant, subs[0].id) == subs[0]
        assert await uow.webhooks.get(other, subs[0].id) is None
        first = await uow.webhooks.list(tenant, limit=2, cursor=None)
        assert [s.id for s in first.items] == [subs[2].id, subs[1].id] and first.next_cursor
        rest = await uow.webhooks.list(tenant, limit=2, cursor=first.next_cursor)
        assert [s.id for s in rest.items] == [subs[0].id] and rest.next_cursor is None
        with pytest.raises(ValidationFailed):
            await uow.webhooks.list(tenant, limit=2, cursor="garbage")
    async with uow_factory() as uow:
        locked = await uow.webhooks.lock(tenant, subs[0].id)
        assert locked is not None
        locked.rotate(new_secret(), T0 + timedelta(minutes=1), timedelta(hours=24))
        locked.change(url="https://other.example.com/y", events=("refund.failed",), enabled=False,
                      description="ops", clear_description=False, now=T0 + timedelta(minutes=1))
        uow.webhooks.save(locked)
    async with uow_factory(read_only=True) as uow:
        assert await uow.webhooks.get(tenant, subs[0].id) == locked


async def test_listening_and_fan_out_once_per_event(uow_factory: UnitOfWorkFactory) -> None:
    tenant = await _tenant(uow_factory)
    exact, star = _subscription(tenant, ("payment.completed",)), _subscription(tenant, ("*",))
    off, deaf = _subscription(tenant, ("*",), enabled=False), _subscription(tenant, ("refund.failed",))
    async with uow_factory() as uow:
        for sub in (exact, star, off, deaf):
            uow.webhooks.add(sub)
    async with uow_factory(read_only=True) as uow:
        assert {s.id for s in await uow.webhooks.listening(tenant, "payment.completed")} == {exact.id, star.id}
        assert {s.id for s in await uow.webhooks.listening(tenant, "payment.late_charge_detected")} == set()
    event_id = new_id()
    async with uow_factory() as uow:
        refs = await uow.webhooks.fan_out([_delivery(exact, event_id), _delivery(star, event_id)])
    assert len(refs) == 2 and {r.attempt for r in refs} == {0}
    async with uow_factory() as uow:  # the same event again: nothing new
        assert await uow.webhooks.fan_out([_delivery(exact, event_id), _delivery(star, event_id)]) == []
    async with uow_factory(read_only=True) as uow:
        log = await uow.webhooks.deliveries(tenant, exact.id, limit=10, cursor=None)
    assert [(d.event_id, d.status, d.attempts, d.correlation_id) for d in log.items] == [
        (event_id, "pending", 0, "c-1")]
    assert log.items[0].trace_context["traceparent"].startswith("00-111")


async def test_deliveries_are_locked_saved_and_removed_with_their_subscription(
    uow_factory: UnitOfWorkFactory,
) -> None:
    tenant, sub, ref = await _one_delivery(uow_factory)
    async with uow_factory() as uow:
        delivery = await uow.webhooks.lock_delivery(tenant, ref.id)
        assert delivery is not None and await uow.webhooks.lock_delivery(await _tenant(uow_factory), ref.id) is None
        delivery.attempts, delivery.last_status_code, delivery.last_error = 1, 200, None
        delivery.succeeded(200, T0 + timedelta(seconds=1))
        uow.webhooks.save_delivery(delivery)
    async with uow_factory(read_only=True) as uow:
        (stored,) = (await uow.webhooks.deliveries(tenant, sub.id, limit=5, cursor=None)).items
    assert (stored.status, stored.attempts, stored.delivered_at, stored.next_attempt_at) == (
        "succeeded", 1, T0 + timedelta(seconds=1), None)
    async with uow_factory() as uow:
        locked = await uow.webhooks.lock(tenant, sub.id)
        assert locked is not None
        uow.webhooks.remove(locked)
    async with uow_factory(read_only=True) as uow:
        assert await uow.webhooks.get(tenant, sub.id) is None
        assert (await uow.webhooks.deliveries(tenant, sub.id, limit=5, cursor=None)).items == []


async def test_due_deliveries_are_claimed_once_and_held_longer_each_time(private: Any) -> None:
    uow_factory, due = private
    tenant, sub = await _subscribed(uow_factory)
    deliveries = [_delivery(sub, new_id(), due=T0 + timedelta(seconds=n)) for n in range(6)]
    async with uow_factory() as uow:
        await uow.webhooks.fan_out(deliveries)
    now = T0 + timedelta(seconds=3.5)
    first, second = await asyncio.gather(due.claim_due(now, 60.0, 2), due.claim_due(now, 60.0, 100))
    assert sorted(r.id for r in [*first, *second]) == sorted(d.id for d in deliveries[:4])  # the due four, once
    assert all(r.correlation_id == "c-1" and r.trace_context and r.attempt == 0 for r in [*first, *second])
    assert await due.claim_due(now, 60.0, 100) == []
    later = now + timedelta(seconds=61)
    again = await due.claim_due(later, 60.0, 100)  # their leases are over, and the two later ones are due
    assert sorted(r.id for r in again) == sorted(d.id for d in deliveries)
    async with uow_factory(read_only=True) as uow:
        log = {d.id: d for d in (await uow.webhooks.deliveries(tenant, sub.id, limit=10, cursor=None)).items}
    held = {d.id: (log[d.id].next_attempt_at, log[d.id].queued) for d in deliveries}
    assert held[deliveries[0].id] == (later + timedelta(seconds=120), 2)  # queued twice: held twice as long
    assert held[deliveries[5].id] == (later + timedelta(seconds=60), 1)


async def test_a_delivery_locked_by_an_attempt_is_skipped_by_the_scheduler(private: Any) -> None:
    uow_factory, due = private
    tenant, _, ref = await _one_delivery(uow_factory)
    async with uow_factory() as attempt:
        assert await attempt.webhooks.lock_delivery(tenant, ref.id) is not None
        assert await due.claim_due(T0 + timedelta(seconds=1), 60.0, 10) == []  # held by the open attempt
    assert [r.id for r in await due.claim_due(T0 + timedelta(seconds=1), 60.0, 10)] == [ref.id]

"""`Webhooks.lock_deliveries` and `Webhooks.get_subscriptions`, what a batch of deliveries is claimed and recorded
with: the same contract on the in-memory and PostgreSQL adapters."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from core.ids import new_id
from core.ports import UnitOfWorkFactory
from core.webhooks import DeliveryStatus, new_secret
from tests.contract.test_webhooks import T0, _delivery, _one_delivery, _subscribed, _subscription, _tenant


async def test_lock_deliveries_finds_each_of_its_tenant_in_id_order(uow_factory: UnitOfWorkFactory) -> None:
    tenant, sub = await _subscribed(uow_factory)
    other, other_sub = await _subscribed(uow_factory)
    mine = [_delivery(sub, new_id()) for _ in range(4)]
    theirs = _delivery(other_sub, new_id())
    async with uow_factory() as uow:
        await uow.webhooks.fan_out([*mine, theirs])
    keys = [(tenant, d.id) for d in reversed(mine)] + [(other, theirs.id), (tenant, theirs.id), (tenant, new_id())]
    async with uow_factory() as uow:
        locked = await uow.webhooks.lock_deliveries(keys)
        assert await uow.webhooks.lock_deliveries([]) == []
    # another tenant's id under this tenant, and an unknown id, find nothing; the rest come in ascending id order
    assert [d.id for d in locked] == sorted([*(d.id for d in mine), theirs.id])
    assert {d.id: d.tenant_id for d in locked}[theirs.id] == other
    first = next(d for d in locked if d.id == mine[0].id)
    assert (first.status, first.attempts, first.body, first.correlation_id, first.trace_context) == (
        DeliveryStatus.PENDING, 0, mine[0].body, "c-1", mine[0].trace_context)


async def test_lock_deliveries_sees_this_unit_of_works_changes_and_saves_each(uow_factory: UnitOfWorkFactory) -> None:
    tenant, sub = await _subscribed(uow_factory)
    deliveries = [_delivery(sub, new_id()) for _ in range(3)]
    async with uow_factory() as uow:
        await uow.webhooks.fan_out(deliveries)
    keys = [(tenant, d.id) for d in deliveries]
    async with uow_factory() as uow:
        first = await uow.webhooks.lock_deliveries(keys)
        for delivery in first:
            delivery.attempts = 1
            uow.webhooks.save_delivery(delivery)
        again = await uow.webhooks.lock_deliveries(keys)  # its own changes win over the stored rows
        assert [d.attempts for d in again] == [1, 1, 1]
        again[0].succeeded(200, T0 + timedelta(seconds=1))
        uow.webhooks.save_delivery(again[0])
    async with uow_factory() as uow:
        stored = await uow.webhooks.lock_deliveries(keys)
    assert [(d.attempts, d.status) for d in stored] == [(1, "succeeded"), (1, "pending"), (1, "pending")]


async def test_a_rolled_back_batch_changes_nothing(uow_factory: UnitOfWorkFactory) -> None:
    tenant, _, ref = await _one_delivery(uow_factory)
    try:
        async with uow_factory() as uow:
            (delivery,) = await uow.webhooks.lock_deliveries([(tenant, ref.id)])
            delivery.attempts = 5
            uow.webhooks.save_delivery(delivery)
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    async with uow_factory() as uow:
        (delivery,) = await uow.webhooks.lock_deliveries([(tenant, ref.id)])
    assert delivery.attempts == 0


async def test_locked_deliveries_are_held_until_the_unit_of_work_ends(private: Any) -> None:
    uow_factory, due = private
    tenant, sub = await _subscribed(uow_factory)
    deliveries = [_delivery(sub, new_id()) for _ in range(3)]
    async with uow_factory() as uow:
        await uow.webhooks.fan_out(deliveries)
    later = T0 + timedelta(seconds=1)
    async with uow_factory() as batch:
        assert len(await batch.webhooks.lock_deliveries([(tenant, d.id) for d in deliveries[:2]])) == 2
        # the scheduler skips the two rows the batch holds (SKIP LOCKED), and takes the third
        assert [r.id for r in await due.claim_due(later, 60.0, 10)] == [deliveries[2].id]

        async def second_batch() -> list[int]:
            async with uow_factory() as uow:
                return [d.attempts for d in await uow.webhooks.lock_deliveries([(tenant, deliveries[0].id)])]

        waiting = asyncio.create_task(second_batch())
        done, _ = await asyncio.wait({waiting}, timeout=0.2)
        assert not done  # a second batch waits for the row
        (held,) = await batch.webhooks.lock_deliveries([(tenant, deliveries[0].id)])
        held.attempts = 1
        batch.webhooks.save_delivery(held)
    assert await asyncio.wait_for(waiting, 10) == [1]  # and then reads what the first committed


async def test_get_subscriptions_finds_each_of_its_tenant(uow_factory: UnitOfWorkFactory) -> None:
    tenant, other = await _tenant(uow_factory), await _tenant(uow_factory)
    subs = [_subscription(tenant, ("*",)), _subscription(tenant, ("payment.completed",), enabled=False)]
    theirs = _subscription(other, ("*",))
    async with uow_factory() as uow:
        for sub in [*subs, theirs]:
            uow.webhooks.add(sub)
    async with uow_factory() as uow:  # rotated: both secrets come back, opened
        locked = await uow.webhooks.lock(tenant, subs[0].id)
        assert locked is not None
        locked.rotate(new_secret(), T0, timedelta(hours=1))
        uow.webhooks.save(locked)
    keys = {(tenant, subs[0].id), (tenant, subs[1].id), (tenant, theirs.id), (other, theirs.id), (tenant, new_id())}
    async with uow_factory(read_only=True) as uow:
        found = await uow.webhooks.get_subscriptions(keys)
        assert await uow.webhooks.get_subscriptions(set()) == []
    assert [s.id for s in found] == sorted([subs[0].id, subs[1].id, theirs.id])
    by_id = {s.id: s for s in found}
    assert by_id[subs[0].id] == locked and by_id[subs[1].id] == subs[1] and by_id[theirs.id] == theirs
    assert by_id[subs[0].id].previous_secrets[0].secret == subs[0].secret and not by_id[subs[1].id].enabled

"""Events (the events feed, API.md §11): the same contract on the in-memory and PostgreSQL adapters."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from adapters.memory.lease import InMemoryLease
from adapters.memory.outbox import InMemoryOutboxFeed, InMemoryTaskQueue
from app.bootstrap import Services
from core.clock import SystemClock
from core.errors import UnknownEvent
from core.events import CATALOGUE, OutboxMessage
from core.ids import new_id
from core.ports import UnitOfWorkFactory
from core.tenants import Tenant
from core.usecases.events import get_event, read_feed
from core.usecases.outbox import housekeep, relay_outbox
from tests.contract.conftest import new_tenant, open_account, transfer


async def feed(uow_factory: UnitOfWorkFactory, tenant_id: UUID, *, after: UUID | None = None,
               types: tuple[str, ...] = CATALOGUE, limit: int = 100) -> list[OutboxMessage]:
    """Every event visible now after `after`, page by page, as a poller reads them."""
    found: list[OutboxMessage] = []
    while True:
        async with uow_factory(read_only=True) as uow:
            page = await uow.events.page(tenant_id, after=after, types=types, limit=limit)
        found += page.items
        if page.next_cursor is None:
            return found
        assert page.next_cursor == str(page.items[-1].id)  # the cursor is the last event's id
        after = page.items[-1].id


def message(tenant_id: UUID, topic: str = "account.updated", **payload: Any) -> OutboxMessage:
    return OutboxMessage.new(tenant_id=tenant_id, topic=topic, aggregate_id=new_id(), payload=payload,
                             correlation_id="req-feed", at=datetime.now(UTC))


async def test_the_feed_is_every_event_oldest_first_and_pages_follow_each_other(
    uow_factory: UnitOfWorkFactory, clock: SystemClock, tenant: Tenant
) -> None:
    alice = await open_account(uow_factory, clock, tenant.id, 1_000)
    bob = await open_account(uow_factory, clock, tenant.id)
    paid = await transfer(uow_factory, clock, tenant.id, alice.id, bob.id, 250)
    events = await feed(uow_factory, tenant.id)
    assert [(e.topic, e.aggregate_id) for e in events] == [
        ("account.created", alice.id), ("account.created", bob.id), ("transfer.completed", paid.id)]
    assert events[2].payload["amount"] == "2.50" and events[2].payload["id"] == str(paid.id)
    assert await feed(uow_factory, tenant.id, limit=1) == events  # three pages of one
    async with uow_factory(read_only=True) as uow:
        first = await uow.events.page(tenant.id, after=None, types=CATALOGUE, limit=2)
        rest = await uow.events.page(tenant.id, after=events[1].id, types=CATALOGUE, limit=2)
        end = await uow.events.page(tenant.id, after=events[2].id, types=CATALOGUE, limit=2)
    assert (first.items, first.next_cursor) == (events[:2], str(events[1].id))
    assert (rest.items, rest.next_cursor) == (events[2:], None)
    assert (end.items, end.next_cursor) == ([], None)
    transfers = await feed(uow_factory, tenant.id, types=("transfer.completed",))
    assert transfers == events[2:]
    assert await feed(uow_factory, tenant.id, after=events[0].id, types=("account.created",)) == events[1:2]


async def test_one_transactions_events_come_in_the_order_they_were_added(
    uow_factory: UnitOfWorkFactory, tenant: Tenant
) -> None:
    batch = [message(tenant.id, n=n) for n in range(5)]
    async with uow_factory() as uow:
        for each in batch:
            uow.outbox.add(each)
    assert [e.id for e in await feed(uow_factory, tenant.id)] == [e.id for e in batch]


async def test_an_after_of_no_event_of_the_tenant_is_refused(
    uow_factory: UnitOfWorkFactory, clock: SystemClock, tenant: Tenant
) -> None:
    other = await new_tenant(uow_factory, clock)
    theirs = await open_account(uow_factory, clock, other.id)
    (their_event,) = await feed(uow_factory, other.id)
    assert their_event.aggregate_id == theirs.id
    for after in (new_id(), their_event.id):
        with pytest.raises(UnknownEvent) as refused:
            async with uow_factory(read_only=True) as uow:
                await uow.events.page(tenant.id, after=after, types=CATALOGUE, limit=10)
        assert [e.field for e in refused.value.errors] == ["after"]
    async with uow_factory(read_only=True) as uow:
        assert await uow.events.get(tenant.id, their_event.id) is None
        assert await uow.events.get(other.id, their_event.id) == their_event
    assert await feed(uow_factory, tenant.id) == []  # nothing of another tenant's


async def test_rolled_back_events_never_appear(uow_factory: UnitOfWorkFactory, tenant: Tenant) -> None:
    kept = message(tenant.id, n="kept")
    with pytest.raises(RuntimeError):
        async with uow_factory() as uow:
            uow.outbox.add(message(tenant.id, n="rolled back"))
            raise RuntimeError("abandon the unit of work")
    async with uow_factory() as uow:
        uow.outbox.add(kept)
    assert [e.id for e in await feed(uow_factory, tenant.id)] == [kept.id]


async def test_an_event_committed_after_a_later_one_is_still_read_once(
    uow_factory: UnitOfWorkFactory, clock: SystemClock, tenant: Tenant
) -> None:
    """The race an insert-time sequence loses: a transaction that began first commits last, after a poller has
    read past what committed meanwhile. The poller must still get its event, once."""
    account = await open_account(uow_factory, clock, tenant.id)
    (opened,) = await feed(uow_factory, tenant.id)
    seen = [opened.id]
    slow_event = message(tenant.id, n="slow")
    slow = uow_factory()
    await slow.__aenter__()
    try:
        await slow.accounts.lock(tenant.id, [account.id])  # on PostgreSQL the transaction takes its id here
        slow.outbox.add(slow_event)
        fast = await open_account(uow_factory, clock, tenant.id, user_id="fast")  # commits while `slow` is open
        seen += [e.id for e in await feed(uow_factory, tenant.id, after=seen[-1])]
    finally:
        await slow.__aexit__(None, None, None)  # commits
    seen += [e.id for e in await feed(uow_factory, tenant.id, after=seen[-1])]
    final = [e.id for e in await feed(uow_factory, tenant.id)]
    assert seen == final  # everything, once, in the feed's (fixed) order
    assert {e.id for e in await feed(uow_factory, tenant.id, after=opened.id)} == {
        slow_event.id, (await _created(uow_factory, tenant.id, fast.id)).id}


async def _created(uow_factory: UnitOfWorkFactory, tenant_id: UUID, account_id: UUID) -> OutboxMessage:
    (event,) = [e for e in await feed(uow_factory, tenant_id) if e.aggregate_id == account_id]
    return event


async def test_get_and_read_feed_serve_the_catalogue_only(uow_factory: UnitOfWorkFactory, tenant: Tenant) -> None:
    internal, public = message(tenant.id, "payment.late_charge_detected"), message(tenant.id, "refund.failed")
    hold = message(tenant.id, "hold.created", status="active")  # holds are not built yet; their events will show
    async with uow_factory() as uow:
        uow.outbox.add(internal)
        uow.outbox.add(public)
    async with uow_factory() as uow:
        uow.outbox.add(hold)
    async with uow_factory(read_only=True) as uow:
        page = await read_feed(tenant.id, after=None, event_type=None, limit=10, uow=uow)
        assert [e.id for e in page.items] == [public.id, hold.id]
        only = await read_feed(tenant.id, after=None, event_type="hold.created", limit=10, uow=uow)
        assert [e.id for e in only.items] == [hold.id]
        assert (await get_event(tenant.id, public.id, uow=uow)) == public
        assert (await uow.events.get(tenant.id, internal.id)) == internal  # kept, but not the API's
        # an internal event's id still marks a place in the feed: continuing after it is allowed
        assert [e.id for e in (await read_feed(tenant.id, after=internal.id, event_type=None, limit=10,
                                               uow=uow)).items] == [public.id, hold.id]


@pytest.fixture
def housekeeping(backend: str, uow_factory: Any, services: Services) -> tuple[Any, Any]:
    """The relay's feed (to mark events published) and the lease housekeeping runs under, on the same store."""
    if backend == "memory":
        published = InMemoryOutboxFeed(uow_factory)
        return published, InMemoryLease(uow_factory, published)
    return services.outbox_feed, services.lease


async def test_events_are_kept_for_the_retention_then_an_after_of_one_is_refused(
    uow_factory: UnitOfWorkFactory, tenant: Tenant, housekeeping: tuple[Any, Any]
) -> None:
    outbox_feed, lease = housekeeping
    old = message(tenant.id, n="old")
    async with uow_factory() as uow:
        uow.outbox.add(old)
    while await relay_outbox(outbox=outbox_feed, queue=InMemoryTaskQueue(), batch=500):
        pass  # published now (with whatever else was waiting)
    owner, name = f"keeper-{secrets.token_hex(3)}", f"housekeeping-{secrets.token_hex(3)}"
    retention, now = timedelta(days=30), datetime.now(UTC)
    kept = await housekeep(lease=lease, owner=owner, ttl_seconds=30, now=now + timedelta(days=29),
                           outbox_retention=retention, name=name)
    assert kept is not None
    assert [e.id for e in await feed(uow_factory, tenant.id)] == [old.id]
    purged = await housekeep(lease=lease, owner=owner, ttl_seconds=30, now=now + timedelta(days=31),
                             outbox_retention=retention, name=name)
    assert purged is not None and purged["outbox"] >= 1
    assert await feed(uow_factory, tenant.id) == []
    with pytest.raises(UnknownEvent):
        await feed(uow_factory, tenant.id, after=old.id)


"""The worker's loops outlive every failure: an outage (a core error) or a bug (any exception) pauses a
loop, which then backs off, carries on and catches up; only `stop` ends it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from uuid import UUID

from adapters.memory import InMemoryStore
from adapters.memory.clock import InMemoryClock
from adapters.memory.outbox import InMemoryOutboxFeed, InMemoryTaskQueue
from core.errors import Unavailable
from core.events import ClaimedBatch, OutboxMessage
from core.holds import HoldStatus
from core.ids import new_id
from core.money import Money
from core.usecases.accounts import CreateAccount, create_account
from core.usecases.holds import CreateHold, create_hold
from core.usecases.outbox import RELAY_BATCH
from core.webhooks import DeliveryPolicy, Subscription
from workers.background import Episode, relay_forever, sweep_holds_forever


class FailingFirst:
    """An outbox feed whose first claims raise the given errors, then behaves."""

    def __init__(self, feed: InMemoryOutboxFeed, errors: list[Exception]) -> None:
        self._feed, self._errors = feed, errors
        self.claims = 0

    @asynccontextmanager
    async def claim(self, limit: int, *, listeners: bool = False) -> AsyncIterator[ClaimedBatch]:
        self.claims += 1
        if self._errors:
            raise self._errors.pop(0)
        async with self._feed.claim(limit, listeners=listeners) as batch:
            yield batch


class Notifications:
    """LISTEN that always works (the real one is exercised by the e2e suites)."""

    def __init__(self, *, leading: bool = True) -> None:
        self.event = asyncio.Event()
        self.leading = leading

    async def listen(self) -> None:
        return None


async def _until(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.01)


class CountedEvents:
    """An `EventMetrics` that remembers the events it was given."""

    def __init__(self) -> None:
        self.ids: list[UUID] = []

    async def published(self, messages: Sequence[OutboxMessage]) -> None:
        self.ids += [m.id for m in messages]


async def test_the_relay_survives_an_outage_and_a_bug_and_then_publishes_what_waited() -> None:
    store, tenant_id, now = InMemoryStore(), new_id(), datetime.now(UTC)
    message = OutboxMessage.new(tenant_id=tenant_id, topic="account.created", aggregate_id=new_id(), payload={},
                                correlation_id="req-1", at=now)
    async with store() as uow:
        uow.outbox.add(message)
        uow.webhooks.add(Subscription(id=new_id(), tenant_id=tenant_id, url="https://example.com/hook",
                                      events=("account.created",), description=None, enabled=True,
                                      secret="whsec_x", created_at=now, updated_at=now))
    feed = FailingFirst(InMemoryOutboxFeed(store), [Unavailable("the database is restarting"),
                                                    RuntimeError("a bug in one batch")])
    queue, counted = InMemoryTaskQueue(), CountedEvents()
    services: Any = SimpleNamespace(outbox_notifications=Notifications(), outbox_feed=feed, queue=queue,
                                    uow_factory=store, clock=InMemoryClock(), metrics=counted)
    stop = asyncio.Event()
    relay = asyncio.create_task(relay_forever(services, DeliveryPolicy(), stop))
    await _until(lambda: len(queue.deliveries) == 1)
    # the relay fanned the event out itself: a delivery, and no `dispatch_event` task
    assert queue.events == [] and queue.deliveries[0].correlation_id == "req-1" and counted.ids == [message.id]
    assert feed.claims >= 3 and not relay.done()
    stop.set()
    await asyncio.wait_for(relay, 10)  # ends by stop alone, without an exception


async def test_a_wake_up_claims_until_a_batch_comes_back_short_and_not_once_more_to_find_nothing() -> None:
    store, tenant_id, now = InMemoryStore(), new_id(), datetime.now(UTC)

    async def write(count: int) -> None:
        async with store() as uow:
            for _ in range(count):
                uow.outbox.add(OutboxMessage.new(tenant_id=tenant_id, topic="account.created", aggregate_id=new_id(),
                                                 payload={}, correlation_id=None, at=now))

    inner = InMemoryOutboxFeed(store)
    feed, notifications = FailingFirst(inner, []), Notifications()
    services: Any = SimpleNamespace(outbox_notifications=notifications, outbox_feed=feed, queue=InMemoryTaskQueue(),
                                    uow_factory=store, clock=InMemoryClock(), metrics=None)
    await write(3)
    stop = asyncio.Event()
    relay = asyncio.create_task(relay_forever(services, DeliveryPolicy(), stop))
    try:
        await _until(lambda: len(inner.published) == 3)
        await asyncio.sleep(0.1)
        assert feed.claims == 1  # a short batch: drained, no second claim (the poll comes after 1 s)
        await write(RELAY_BATCH + 5)
        notifications.event.set()  # what the commit's NOTIFY does
        await _until(lambda: len(inner.published) == RELAY_BATCH + 8)
        await asyncio.sleep(0.1)
        assert feed.claims == 3  # a full batch, then the short rest
    finally:
        stop.set()
        await asyncio.wait_for(relay, 10)


async def test_a_relay_that_does_not_lead_ignores_notifications_and_polls() -> None:
    store, tenant_id, now = InMemoryStore(), new_id(), datetime.now(UTC)
    inner = InMemoryOutboxFeed(store)
    feed, notifications = FailingFirst(inner, []), Notifications(leading=False)
    services: Any = SimpleNamespace(outbox_notifications=notifications, outbox_feed=feed, queue=InMemoryTaskQueue(),
                                    uow_factory=store, clock=InMemoryClock(), metrics=None)
    stop = asyncio.Event()
    relay = asyncio.create_task(relay_forever(services, DeliveryPolicy(), stop))
    try:
        await _until(lambda: feed.claims == 1)  # the first round claims (nothing yet)
        async with store() as uow:
            uow.outbox.add(OutboxMessage.new(tenant_id=tenant_id, topic="account.created", aggregate_id=new_id(),
                                             payload={}, correlation_id=None, at=now))
        started = asyncio.get_running_loop().time()
        notifications.event.set()  # another relay leads and answers it
        await asyncio.sleep(0.3)
        assert feed.claims == 1 and inner.published == set()
        await _until(lambda: len(inner.published) == 1)  # the poll, a second after the first round
        assert asyncio.get_running_loop().time() - started > 0.5
    finally:
        stop.set()
        await asyncio.wait_for(relay, 10)


class FailingFactory:
    """A unit-of-work factory whose first units of work raise the given errors, then behaves."""

    def __init__(self, store: InMemoryStore, errors: list[Exception]) -> None:
        self._store, self._errors = store, errors
        self.calls = 0

    def __call__(self, **options: Any) -> Any:
        self.calls += 1
        if self._errors:
            raise self._errors.pop(0)
        return self._store(**options)


async def test_the_hold_sweep_survives_an_outage_and_a_bug_and_expires_holds_on_every_round() -> None:
    store, clock, tenant_id = InMemoryStore(), InMemoryClock(), new_id()
    ids: list[UUID] = []
    for user, opening in (("alice", 1_000), ("bob", 0)):
        async with store() as uow:
            ids.append((await create_account(CreateAccount(
                tenant_id=tenant_id, user_id=user, currency="USD",
                initial_balance=Money(opening, "USD") if opening else None), uow=uow, clock=clock)).id)

    async def place() -> UUID:
        async with store() as uow:
            return (await create_hold(CreateHold(tenant_id=tenant_id, source_account_id=ids[0],
                                                 destination_account_id=ids[1], amount=Money(100, "USD"),
                                                 expires_in=60), uow=uow, clock=clock)).id

    first, factory = await place(), FailingFactory(store, [Unavailable("the database is restarting"),
                                                           RuntimeError("a bug in one round")])
    services: Any = SimpleNamespace(settings=SimpleNamespace(worker=SimpleNamespace(hold_sweep_interval=0.02)),
                                    uow_factory=factory, clock=clock)
    stop = asyncio.Event()
    sweep = asyncio.create_task(sweep_holds_forever(services, stop))
    await asyncio.sleep(0.1)
    assert store.holds[first].status is HoldStatus.ACTIVE  # not due yet: the rounds find nothing
    clock.advance(timedelta(seconds=60))
    await _until(lambda: store.holds[first].status is HoldStatus.EXPIRED)
    assert store.accounts[ids[0]].held == 0 and factory.calls >= 3
    second = await place()  # a later hold: a later round
    clock.advance(timedelta(seconds=60))
    await _until(lambda: store.holds[second].status is HoldStatus.EXPIRED)
    assert store.accounts[ids[0]].held == 0 and not sweep.done()
    assert [m.topic for m in store.outbox].count("hold.expired") == 2
    stop.set()
    await asyncio.wait_for(sweep, 10)  # ends by stop alone, without an exception


def test_an_episode_backs_off_with_jitter_up_to_its_cap_and_starts_over_after_a_success() -> None:
    episode = Episode("a loop")
    waits = [episode.failed(RuntimeError("down")) for _ in range(12)]
    assert 0.25 <= waits[0] <= 0.5
    assert all(wait <= 30.0 for wait in waits) and waits[-1] >= 15.0
    episode.succeeded()
    assert episode.failures == 0 and episode.failed(Unavailable("down again")) <= 0.5

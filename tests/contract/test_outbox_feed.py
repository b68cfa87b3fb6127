"""OutboxFeed, TaskQueue and Lease: the same contract on the in-memory and PostgreSQL adapters."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

from adapters.memory import InMemoryStore
from adapters.memory.lease import InMemoryLease
from adapters.memory.outbox import InMemoryOutboxFeed, InMemoryTaskQueue
from adapters.postgres.outbox_feed import PgOutboxFeed
from app.bootstrap import Services
from core.clock import SystemClock
from core.events import Listener, OutboxMessage
from core.idempotency import IdempotencyRecord, IdempotentRequest, StoredResponse
from core.ids import new_id
from core.usecases.outbox import housekeep, reap_idempotency_keys, relay_outbox
from core.usecases.webhook_delivery import Audience, fan_out_events
from core.webhooks import DeliveryPolicy, Subscription
from tests.contract.recording import Recording


@attrs.define
class Backend:
    uow_factory: Any
    feed: Any
    lease: Any
    published: Any  # async (ids) -> set of ids marked published


@pytest.fixture(params=["memory", "postgres"])
async def backend(request: pytest.FixtureRequest, services: Services) -> AsyncIterator[Backend]:
    if request.param == "memory":
        store = InMemoryStore()
        feed = InMemoryOutboxFeed(store)

        async def published_memory(ids: set[Any]) -> set[Any]:
            return feed.published & ids

        yield Backend(store, feed, InMemoryLease(store, feed), published_memory)
        return

    async def published_pg(ids: set[Any]) -> set[Any]:
        rows = await services.pool.fetch(
            "SELECT id FROM outbox WHERE id = ANY($1::uuid[]) AND published_at IS NOT NULL", list(ids))
        return {row["id"] for row in rows}

    # Other tests leave unpublished rows behind: drain them so each test sees its own.
    await services.pool.execute("UPDATE outbox SET published_at = now() WHERE published_at IS NULL")
    yield Backend(services.uow_factory, services.outbox_feed, services.lease, published_pg)


async def add_messages(backend: Backend, count: int) -> set[Any]:
    now = datetime.now(UTC)
    async with backend.uow_factory() as uow:
        tenant = await uow.tenants.get_or_create(f"outbox-{secrets.token_hex(4)}", now)
        messages = [OutboxMessage.new(tenant_id=tenant.id, topic="account.created", aggregate_id=new_id(),
                                      payload={"n": n}, correlation_id=f"req-{n}", at=now) for n in range(count)]
        for message in messages:
            uow.outbox.add(message)
    return {m.id for m in messages}


async def test_relay_publishes_each_message_once_and_marks_it(backend: Backend) -> None:
    ids = await add_messages(backend, 7)
    queue = InMemoryTaskQueue()
    assert await relay_outbox(outbox=backend.feed, queue=queue, batch=5) == 5
    assert await relay_outbox(outbox=backend.feed, queue=queue, batch=5) == 2
    assert await relay_outbox(outbox=backend.feed, queue=queue, batch=5) == 0
    published = [m.id for m in queue.events]
    assert len(published) == len(set(published)) == len(ids) and set(published) == ids
    assert await backend.published(ids) == ids
    assert queue.events[0].correlation_id == "req-0"


async def test_concurrent_claims_never_share_a_row(backend: Backend) -> None:
    ids = await add_messages(backend, 10)
    async with backend.feed.claim(6) as first, backend.feed.claim(6) as second:
        a = {m.id for m in first.messages}
        b = {m.id for m in second.messages}
        assert a.isdisjoint(b)
        assert a | b == ids
        first.mark_published()
    # `second` was not marked: its rows come back; `first`'s never do.
    async with backend.feed.claim(100) as third:
        assert {m.id for m in third.messages} == b


async def test_a_failed_publish_leaves_rows_unpublished(backend: Backend) -> None:
    ids = await add_messages(backend, 3)

    class Broken:
        async def publish_events(self, messages: Any, **options: Any) -> None:
            raise RuntimeError("broker down")

    with pytest.raises(RuntimeError):
        await relay_outbox(outbox=backend.feed, queue=Broken(), batch=10)
    assert await backend.published(ids) == set()
    queue = InMemoryTaskQueue()
    assert await relay_outbox(outbox=backend.feed, queue=queue, batch=10) == 3


async def test_the_relay_counts_a_batch_once_after_its_claim_committed(backend: Backend) -> None:
    ids = await add_messages(backend, 4)
    counted: list[Any] = []

    class Metrics:
        async def published(self, messages: Any) -> None:
            assert await backend.published({m.id for m in messages}) == {m.id for m in messages}  # committed
            counted.extend(m.id for m in messages)

    class Broken:
        async def publish_events(self, messages: Any, **options: Any) -> None:
            raise RuntimeError("broker down")

    with pytest.raises(RuntimeError):  # a batch that does not commit counts nothing; it is published again
        await relay_outbox(outbox=backend.feed, queue=Broken(), metrics=Metrics(), batch=10)
    assert counted == []
    queue = InMemoryTaskQueue()
    assert await relay_outbox(outbox=backend.feed, queue=queue, metrics=Metrics(), batch=10) == 4
    assert await relay_outbox(outbox=backend.feed, queue=queue, metrics=Metrics(), batch=10) == 0
    assert sorted(counted) == sorted(ids)


async def test_lease_is_exclusive_renewable_and_fenced(backend: Backend) -> None:
    name = f"job-{secrets.token_hex(4)}"
    first = await backend.lease.acquire(name, "a", 0.3)
    assert first is not None
    assert await backend.lease.acquire(name, "b", 5) is None
    assert await backend.lease.acquire(name, "a", 0.3) == first  # renewal keeps the token
    await asyncio.sleep(0.4)  # let a's lease lapse (the lease is about wall-clock time)
    taken = await backend.lease.acquire(name, "b", 5)
    assert taken is not None and taken > first
    assert await backend.lease.acquire(name, "a", 5) is None


async def test_reaping_deletes_only_expired_keys_under_the_lease(backend: Backend) -> None:
    now = datetime.now(UTC)
    async with backend.uow_factory() as uow:
        tenant = await uow.tenants.get_or_create(f"reap-{secrets.token_hex(4)}", now)
    for key, age in (("old-1", 2), ("old-2", 3), ("fresh", 0)):
        async with backend.uow_factory() as uow:
            request = IdempotentRequest(tenant_id=tenant.id, key=key, fingerprint=b"x" * 32)
            created = now - timedelta(days=age)
            uow.idempotency.add(IdempotencyRecord(request=request, response=StoredResponse(status=201, body=b"{}"),
                                                  created_at=created, expires_at=created + timedelta(days=1)))
    owner, name = f"reaper-{secrets.token_hex(3)}", f"housekeeping-{secrets.token_hex(3)}"
    deleted = await reap_idempotency_keys(lease=backend.lease, owner=owner, ttl_seconds=30, batch=1, name=name)
    assert deleted is not None and deleted >= 2
    async with backend.uow_factory() as uow:
        fresh = IdempotentRequest(tenant_id=tenant.id, key="fresh", fingerprint=b"x" * 32)
        assert await uow.idempotency.claim(fresh, datetime.now(UTC)) is not None
    assert await reap_idempotency_keys(lease=backend.lease, owner="someone-else", ttl_seconds=30, name=name) is None


async def test_housekeeping_purges_only_old_published_rows(backend: Backend) -> None:
    ids = await add_messages(backend, 4)
    async with backend.feed.claim(2) as claim:
        claim.mark_published()
    published = {m.id for m in claim.messages}
    owner, name = f"keeper-{secrets.token_hex(3)}", f"housekeeping-{secrets.token_hex(3)}"
    kept = await housekeep(lease=backend.lease, owner=owner, ttl_seconds=30, now=datetime.now(UTC),
                           outbox_retention=timedelta(days=7), name=name)
    assert kept is not None and kept["outbox"] == 0
    purged = await housekeep(lease=backend.lease, owner=owner, ttl_seconds=30,
                             now=datetime.now(UTC) + timedelta(days=8), outbox_retention=timedelta(days=7), name=name)
    assert purged is not None and purged["outbox"] >= 2
    async with backend.feed.claim(100) as rest:
        remaining = {m.id for m in rest.messages}
    assert remaining == ids - published  # unpublished rows are never purged
    assert await housekeep(lease=backend.lease, owner="another", ttl_seconds=30, now=datetime.now(UTC),
                           outbox_retention=timedelta(days=7), name=name) is None


async def test_the_relay_fans_events_out_itself_once_and_still_starts_the_work(backend: Backend) -> None:
    now = datetime.now(UTC)
    async with backend.uow_factory() as uow:
        heard, everything, quiet = [await uow.tenants.get_or_create(f"audience-{secrets.token_hex(4)}", now)
                                    for _ in range(3)]
        listening = []
        for tenant, events, enabled in ((heard, ("account.created",), True), (heard, ("*",), True),
                                        (everything, ("*",), True), (quiet, ("*",), False)):
            subscription = Subscription(id=new_id(), tenant_id=tenant.id, url="https://example.com/hook",
                                        events=events, description=None, enabled=enabled, secret="whsec_x",
                                        created_at=now, updated_at=now)
            uow.webhooks.add(subscription)
            if enabled:
                listening.append(Listener(id=subscription.id, tenant_id=tenant.id, events=events))
        external = {"payment_type": "external_payment"}
        messages = {(tenant.id, topic): OutboxMessage.new(tenant_id=tenant.id, topic=topic, aggregate_id=new_id(),
                                                          payload=payload, correlation_id=f"{n}:{topic}", at=now)
                    for n, (tenant, topic, payload) in enumerate((
                        (heard, "account.created", {}), (heard, "account.updated", {}),
                        (everything, "transfer.completed", {}), (everything, "payment.late_charge_detected", external),
                        (quiet, "payment.created", external)))}
        for message in messages.values():
            uow.outbox.add(message)
    queue = InMemoryTaskQueue()
    audience = Audience(uow_factory=backend.uow_factory, clock=SystemClock(), policy=DeliveryPolicy())
    assert await relay_outbox(outbox=backend.feed, queue=queue, audience=audience, batch=10) == 5
    # no event task; one delivery per event and subscription hearing it: internal events are never sent, not even
    # to "*", and a disabled subscription hears nothing
    assert queue.events == []
    assert sorted(ref.correlation_id for ref in queue.deliveries) == [
        "0:account.created", "0:account.created", "1:account.updated", "2:transfer.completed"]
    worked = {messages[everything.id, "payment.late_charge_detected"].aggregate_id,
              messages[quiet.id, "payment.created"].aggregate_id}
    assert {item.target_id for item, _ in queue.work} == worked
    assert await backend.published({m.id for m in messages.values()}) == {m.id for m in messages.values()}
    # published again (a relay that crashed before its claim committed): no delivery is written twice
    assert await fan_out_events(list(messages.values()), audience=audience, listeners=listening) == []


async def test_a_claim_asked_for_listeners_carries_its_tenants_enabled_subscriptions(backend: Backend) -> None:
    now = datetime.now(UTC)
    subscribed: dict[str, list[Any]] = {}
    async with backend.uow_factory() as uow:
        heard, silent, quiet = [await uow.tenants.get_or_create(f"listeners-{secrets.token_hex(4)}", now)
                                for _ in range(3)]
        for name, tenant, events, enabled in (("heard", heard, ("*",), True), ("heard", heard, ("hold.created",), True),
                                              ("off", heard, ("*",), False), ("silent", silent, ("*",), True)):
            subscription = Subscription(id=new_id(), tenant_id=tenant.id, url="https://example.com/hook",
                                        events=events, description=None, enabled=enabled, secret="whsec_x",
                                        created_at=now, updated_at=now)
            uow.webhooks.add(subscription)
            subscribed.setdefault(name, []).append(subscription)
        for tenant in (heard, quiet):  # `silent` has a subscription and no event in the claim
            uow.outbox.add(OutboxMessage.new(tenant_id=tenant.id, topic="account.created", aggregate_id=new_id(),
                                             payload={}, correlation_id=None, at=now))
    ours = {heard.id, silent.id, quiet.id}
    async with backend.feed.claim(100) as claimed:
        assert claimed.listeners is None  # not asked
    async with backend.feed.claim(100, listeners=True) as claimed:
        assert claimed.listeners is not None
        claimed_tenants = {m.tenant_id for m in claimed.messages}
        assert {heard.id, quiet.id} <= claimed_tenants
        assert all(listener.tenant_id in claimed_tenants for listener in claimed.listeners)
        assert [(s.id, s.events) for s in claimed.listeners if s.tenant_id in ours] == sorted(
            (s.id, s.events) for s in subscribed["heard"])
        assert [s.id for s in claimed.listeners] == sorted(s.id for s in claimed.listeners)
        claimed.mark_published()


async def test_the_relays_fan_out_reads_no_subscriptions_apart_from_its_claim(backend: Backend) -> None:
    await add_messages(backend, 2)

    def no_reads(*, read_only: bool = False) -> Any:  # writing deliveries (other tests' tenants may listen) is fine
        assert not read_only, "the fan-out read the subscriptions apart from its claim"
        return backend.uow_factory()

    queue = InMemoryTaskQueue()
    audience = Audience(uow_factory=no_reads, clock=SystemClock(), policy=DeliveryPolicy())  # type: ignore[arg-type]
    while await relay_outbox(outbox=backend.feed, queue=queue, audience=audience, batch=100):
        pass
    assert queue.deliveries == []


async def test_on_postgresql_a_claim_is_one_statement_in_its_transaction(services: Services) -> None:
    """The claim marks the rows it takes in the statement that takes them (issue 12): BEGIN, UPDATE … RETURNING,
    COMMIT once they are published; rolled back, they are not. They come back in the order they were written."""
    await services.pool.execute("UPDATE outbox SET published_at = now() WHERE published_at IS NULL")
    backend = Backend(services.uow_factory, services.outbox_feed, services.lease, None)
    ids = await add_messages(backend, 3)
    sent: list[str] = []

    class Pool:
        @contextlib.asynccontextmanager
        async def acquire(self) -> AsyncIterator[Recording]:
            async with services.pool.acquire() as conn:
                yield Recording(conn, sent)

    feed = PgOutboxFeed(Pool())  # type: ignore[arg-type]
    async with feed.claim(10) as claimed:
        assert [m.payload["n"] for m in claimed.messages] == [0, 1, 2]
    assert sent == ["BEGIN", "UPDATE", "ROLLBACK"]  # not marked: the rows stay unpublished
    sent.clear()
    async with feed.claim(10) as claimed:
        assert {m.id for m in claimed.messages} == ids
        claimed.mark_published()
    async with feed.claim(10) as claimed:
        assert claimed.messages == []
    assert sent == ["BEGIN", "UPDATE", "COMMIT"] * 2
    sent.clear()
    async with feed.claim(10, listeners=True) as claimed:  # the subscriptions come in the same statement
        assert claimed.messages == [] and claimed.listeners == []
    assert sent == ["BEGIN", "WITH", "COMMIT"]
    rows = await services.pool.fetch(
        "SELECT attempts FROM outbox WHERE id = ANY($1::uuid[]) AND published_at IS NOT NULL", list(ids))
    assert [row["attempts"] for row in rows] == [1, 1, 1]

"""The `TaskQueue` port: one suite over the in-memory fake and Dramatiq's Redis and RabbitMQ brokers.

A real backend is `DramatiqTaskQueue` on a broker of its own, on a private Redis database that is read back key by
key (what `RedisBroker.enqueue` wrote), or on a RabbitMQ vhost of this module's whose queues are drained with
`basic_get`, so nothing here reaches a worker.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID, uuid5

import attrs
import dramatiq
import dramatiq.broker
import pika
import pytest
import redis
import redis.asyncio as aioredis

from adapters.dramatiq.broker import (
    DELIVER_ACTOR,
    DISPATCH_ACTOR,
    EVENTS_QUEUE,
    SLOW_QUEUES,
    WEBHOOKS_QUEUE,
    WORK_ACTORS,
    WORK_QUEUE,
    DramatiqTaskQueue,
    delivery_message,
    delivery_refs,
    make_broker,
    work_item,
)
from adapters.memory.outbox import InMemoryTaskQueue
from core.errors import Unavailable
from core.events import OutboxMessage
from core.ids import new_id
from core.webhooks import DeliveryRef
from core.work import PAYMENT, REFUND, WorkItem
from tests.rabbitmq import rabbitmq_vhost

pytestmark = pytest.mark.timeout(60)

PRIVATE_DB = 10  # the broker under test never shares a database with the session's workers
QUEUES = [EVENTS_QUEUE, WORK_QUEUE, WEBHOOKS_QUEUE]
#: The namespace work ids derive from; changing it would make a republished event start its work twice.
WORK_IDS = UUID("6f1c1d1e-4b0a-4c55-9a53-1f0b4d1c7a10")


@attrs.frozen
class Task:
    """One enqueued task in port terms; `delay` is the interval the requested delay must lie in."""

    kind: str  # "event", "work" or "delivery"
    subject: Any  # the event id, the `WorkItem`, or the message's `DeliveryRef`s (a tuple)
    message_id: str | None
    delay: tuple[float, float]
    raw: dramatiq.Message[Any] | None = None  # what the broker holds (the real backend only)


def delayed_by(task: Task, seconds: float) -> bool:
    low, high = task.delay
    return low <= seconds <= high


class MemoryQueues:
    def __init__(self) -> None:
        self.queue = InMemoryTaskQueue()
        self._seen = (0, 0, 0)

    async def take(self, before_ms: int, after_ms: int) -> list[Task]:
        q = self.queue
        events, work, deliveries = self._seen
        tasks = [Task("event", m.id, str(m.id), (0.0, 0.0)) for m in q.events[events:]]
        tasks += [Task("work", item, None, (delay, delay)) for item, delay in q.work[work:]]
        tasks += [Task("delivery", tuple(refs), None, (delay, delay))
                  for refs, delay in q.delivery_messages[deliveries:]]
        self._seen = (len(q.events), len(q.work), len(q.delivery_messages))
        return tasks


class RedisQueues:
    def __init__(self, queue: DramatiqTaskQueue, client: aioredis.Redis) -> None:
        self.queue, self._client = queue, client

    async def take(self, before_ms: int, after_ms: int) -> list[Task]:
        """Everything the broker holds, oldest first per queue, then forget it."""
        tasks = []
        for name in [*QUEUES, *(f"{q}.DQ" for q in QUEUES)]:
            key = f"dramatiq:{name}"
            for redis_id in await self._client.lrange(key, 0, -1):
                message = dramatiq.Message.decode(await self._client.hget(f"{key}.msgs", redis_id))
                eta = message.options.get("eta")
                # enqueue put `eta` at its own now + delay, and its now lay between before and after
                delay = (0.0, 0.0) if eta is None else ((eta - after_ms) / 1000, (eta - before_ms) / 1000)
                tasks.append(Task(*_subject(message), message.message_id, delay, message))
            await self._client.delete(key, f"{key}.msgs")
        return tasks


class RabbitQueues:
    """The queue under test on a RabbitMQ broker, read back with a connection of its own."""

    def __init__(self, queue: DramatiqTaskQueue, url: str) -> None:
        self.queue, self._url = queue, url

    async def take(self, before_ms: int, after_ms: int) -> list[Task]:
        """Everything the broker holds, oldest first per queue, then forget it (taken with auto-ack)."""
        tasks = []
        connection = pika.BlockingConnection(pika.URLParameters(self._url))
        try:
            channel = connection.channel()
            for name in [*QUEUES, *(f"{q}.DQ" for q in QUEUES)]:
                while True:
                    _, _, body = channel.basic_get(name, auto_ack=True)
                    if body is None:
                        break
                    message = dramatiq.Message.decode(body)
                    eta = message.options.get("eta")
                    delay = (0.0, 0.0) if eta is None else ((eta - after_ms) / 1000, (eta - before_ms) / 1000)
                    tasks.append(Task(*_subject(message), message.message_id, delay, message))
        finally:
            connection.close()
        return tasks


def _subject(message: dramatiq.Message[Any]) -> tuple[str, Any]:
    task = message.args[0]
    if message.queue_name.removesuffix(".DQ") == EVENTS_QUEUE:
        return "event", UUID(task["id"])
    if message.queue_name.removesuffix(".DQ") == WORK_QUEUE:
        return "work", work_item(task)
    return "delivery", tuple(delivery_refs(task))


def _private(url: str, db: int) -> str:
    parts = urlsplit(url)
    if "db=" in parts.query:
        query = "&".join(f"db={db}" if p.startswith("db=") else p for p in parts.query.split("&"))
        return urlunsplit(parts._replace(query=query))
    if parts.scheme == "unix":  # the path is the socket's (the embedded Redis): the database goes in the query
        return f"{url}{'&' if parts.query else '?'}db={db}"  # (urlunsplit would drop the empty netloc's //)
    return urlunsplit(parts._replace(path=f"/{db}"))


@contextmanager
def global_broker_kept() -> Iterator[None]:
    """`make_broker` makes its broker the global one; the session's stays global."""
    previous = dramatiq.broker.global_broker
    try:
        yield
    finally:
        dramatiq.broker.global_broker = previous


@asynccontextmanager
async def private_broker(redis_url: str) -> AsyncIterator[RedisQueues]:
    """`DramatiqTaskQueue` on a broker made as the worker's is, on the private database, emptied before and after."""
    url = _private(redis_url, PRIVATE_DB)
    client = aioredis.Redis.from_url(url)
    await client.flushdb()
    with global_broker_kept():
        broker = make_broker(url)
    try:
        yield RedisQueues(DramatiqTaskQueue(broker), client)
    finally:
        broker.close()
        await client.flushdb()
        await client.aclose()


@pytest.fixture(scope="module")
def rabbitmq_url() -> Iterator[str]:
    """A vhost of this module's (its queues are drained by every `take`)."""
    with rabbitmq_vhost() as url:
        yield url


@asynccontextmanager
async def rabbit_broker(url: str) -> AsyncIterator[RabbitQueues]:
    with global_broker_kept():
        broker = make_broker(url)
    for name in QUEUES:  # each with its delay and dead-letter queues, so that `take` finds every one
        broker.declare_queue(name, ensure=True)
    real = RabbitQueues(DramatiqTaskQueue(broker), url)
    try:
        yield real
    finally:
        await real.take(0, 0)
        broker.close()


@pytest.fixture(params=["memory", "redis", "rabbitmq"])
async def queues(request: pytest.FixtureRequest, redis_url: str
                 ) -> AsyncIterator[MemoryQueues | RedisQueues | RabbitQueues]:
    if request.param == "memory":
        yield MemoryQueues()
    elif request.param == "redis":
        async with private_broker(redis_url) as real:
            yield real
    else:
        async with rabbit_broker(request.getfixturevalue("rabbitmq_url")) as rabbit:
            yield rabbit


async def sent(queues: MemoryQueues | RedisQueues | RabbitQueues, call: Callable[[], Awaitable[None]]) -> list[Task]:
    before = int(time.time() * 1000)
    await call()
    after = int(time.time() * 1000)
    return await queues.take(before, after)


def _message(topic: str, payload: dict[str, Any] | None = None, correlation_id: str | None = "req-1") -> OutboxMessage:
    return OutboxMessage.new(tenant_id=new_id(), topic=topic, aggregate_id=new_id(), payload=payload or {},
                             correlation_id=correlation_id, at=datetime.now(UTC))


def _of(tasks: list[Task], kind: str) -> list[Task]:
    return [t for t in tasks if t.kind == kind]


async def test_one_event_task_per_message_in_order_identified_by_the_message_id(queues) -> None:
    messages = [_message("account.created"), _message("transfer.completed", correlation_id=None),
                _message("payment.created", {"payment_type": "transfer"})]
    tasks = await sent(queues, lambda: queues.queue.publish_events(messages))
    events = _of(tasks, "event")
    assert [t.subject for t in events] == [m.id for m in messages]
    assert [t.message_id for t in events] == [str(m.id) for m in messages]
    assert all(delayed_by(t, 0) for t in events)
    assert _of(tasks, "work") == []  # none of them asks for work
    assert _of(tasks, "delivery") == []


async def test_new_external_payments_and_refunds_also_enqueue_their_work(queues) -> None:
    payment = _message("payment.created", {"payment_type": "external_payment"}, correlation_id="req-p")
    refund = _message("refund.created", correlation_id="req-r")
    transfer = _message("payment.created", {"payment_type": "transfer"})
    tasks = await sent(queues, lambda: queues.queue.publish_events([payment, transfer, refund]))
    assert [t.subject for t in _of(tasks, "event")] == [payment.id, transfer.id, refund.id]
    work = _of(tasks, "work")
    assert sorted((t.subject for t in work), key=lambda i: i.kind) == [
        WorkItem(kind=PAYMENT, tenant_id=payment.tenant_id, target_id=payment.aggregate_id, correlation_id="req-p"),
        WorkItem(kind=REFUND, tenant_id=refund.tenant_id, target_id=refund.aggregate_id, correlation_id="req-r"),
    ]
    assert all(delayed_by(t, 0) for t in work)


async def test_a_republished_event_keeps_its_id(queues) -> None:
    message = _message("account.created")
    first = await sent(queues, lambda: queues.queue.publish_events([message]))
    again = await sent(queues, lambda: queues.queue.publish_events([message]))  # delivery is at least once
    assert [t.message_id for t in first] == [t.message_id for t in again] == [str(message.id)]


async def test_work_is_enqueued_with_its_delay(queues) -> None:
    tenant = new_id()
    now = [WorkItem(kind=PAYMENT, tenant_id=tenant, target_id=new_id(), correlation_id="req-1"),
           WorkItem(kind=REFUND, tenant_id=tenant, target_id=new_id())]
    later = WorkItem(kind=PAYMENT, tenant_id=tenant, target_id=new_id(), correlation_id="req-2")
    immediate = await sent(queues, lambda: queues.queue.enqueue_work(now))
    postponed = await sent(queues, lambda: queues.queue.enqueue_work([later], delay_seconds=30))
    assert sorted((t.subject for t in immediate), key=lambda i: i.kind) == now
    assert all(t.kind == "work" and delayed_by(t, 0) for t in immediate)
    (task,) = postponed
    assert task.subject == later and delayed_by(task, 30) and not delayed_by(task, 0)
    assert await sent(queues, lambda: queues.queue.enqueue_work([])) == []


async def test_deliveries_are_enqueued_in_messages_of_up_to_50_refs_with_their_delay(queues) -> None:
    tenants = [new_id(), new_id()]
    refs = [DeliveryRef(id=new_id(), tenant_id=tenants[n % 2], attempt=n % 3, correlation_id=f"req-{n}",
                        trace_context={"traceparent": f"00-{n:032x}-{1:016x}-01"} if n % 2 else {})
            for n in range(1, 108)]
    immediate = await sent(queues, lambda: queues.queue.enqueue_deliveries(refs))
    retry = DeliveryRef(id=refs[0].id, tenant_id=refs[0].tenant_id, attempt=1)
    postponed = await sent(queues, lambda: queues.queue.enqueue_deliveries([retry], delay_seconds=120))
    # in order, 50 + 50 + 7, each ref whole (its tenant, attempt, correlation id and trace)
    assert [(t.kind, t.subject) for t in immediate] == [
        ("delivery", tuple(refs[:50])), ("delivery", tuple(refs[50:100])), ("delivery", tuple(refs[100:]))]
    assert all(delayed_by(t, 0) for t in immediate)
    (task,) = postponed
    assert task.subject == (retry,) and delayed_by(task, 120) and not delayed_by(task, 0)
    assert await sent(queues, lambda: queues.queue.enqueue_deliveries([], delay_seconds=5)) == []


def test_a_message_queued_before_batches_still_names_its_one_delivery() -> None:
    """A `deliver_webhook` message of the last release (one delivery, its fields at the top level) is still read."""
    ref = DeliveryRef(id=new_id(), tenant_id=new_id(), attempt=2, correlation_id="req-old")
    old = {"tenant_id": str(ref.tenant_id), "delivery_id": str(ref.id), "attempt": 2, "correlation_id": "req-old"}
    assert delivery_refs(old) == [ref]
    batch = delivery_message([ref, attrs.evolve(ref, id=new_id(), correlation_id="req-2")])
    assert "correlation_id" not in batch.args[0]  # two requests' deliveries: each keeps its own
    assert delivery_message([ref]).args[0]["correlation_id"] == "req-old"


# --- what only the Dramatiq adapter has: queues, actors, the broker's own ids, an outage -----------------------


@pytest.fixture(params=["redis", "rabbitmq"])
async def broker_queues(request: pytest.FixtureRequest, redis_url: str
                        ) -> AsyncIterator[RedisQueues | RabbitQueues]:
    """A real broker: Redis, or RabbitMQ."""
    if request.param == "redis":
        async with private_broker(redis_url) as real:
            yield real
    else:
        async with rabbit_broker(request.getfixturevalue("rabbitmq_url")) as rabbit:
            yield rabbit


async def test_dramatiq_routes_each_task_to_its_queue_and_actor(broker_queues: RedisQueues | RabbitQueues) -> None:
    queue = broker_queues.queue
    payment = _message("payment.created", {"payment_type": "external_payment"})
    refund = _message("refund.created")
    ref = DeliveryRef(id=new_id(), tenant_id=new_id(), attempt=0)
    item = WorkItem(kind=REFUND, tenant_id=new_id(), target_id=new_id())
    published = await sent(broker_queues, lambda: queue.publish_events([payment, refund]))
    again = await sent(broker_queues, lambda: queue.publish_events([payment, refund]))
    later = await sent(broker_queues, lambda: queue.enqueue_work([item], delay_seconds=2))
    hooks = await sent(broker_queues, lambda: queue.enqueue_deliveries([ref], delay_seconds=3))
    routes = {(t.kind, t.raw.queue_name, t.raw.actor_name) for t in [*published, *later, *hooks] if t.raw}
    assert routes == {("event", EVENTS_QUEUE, DISPATCH_ACTOR), ("work", WORK_QUEUE, WORK_ACTORS[PAYMENT]),
                      ("work", WORK_QUEUE, WORK_ACTORS[REFUND]), ("work", f"{WORK_QUEUE}.DQ", WORK_ACTORS[REFUND]),
                      ("delivery", f"{WEBHOOKS_QUEUE}.DQ", DELIVER_ACTOR)}
    event = published[0].raw.args[0] if published[0].raw else {}
    assert (event["id"], event["type"], event["tenant_id"], event["aggregate_id"]) == (
        str(payment.id), "payment.created", str(payment.tenant_id), str(payment.aggregate_id))
    # the work an event starts has an id derived from the event's: a republished event starts the same task
    work_ids = [t.message_id for t in _of(published, "work")]
    assert work_ids == [t.message_id for t in _of(again, "work")]
    assert work_ids == [str(uuid5(WORK_IDS, str(m.id))) for m in (payment, refund)]


async def test_on_redis_a_batch_is_one_pipeline_not_a_round_trip_per_message(redis_url: str) -> None:
    """The relay publishes four messages per external payment: Dramatiq alone would send each on its own round trip."""
    pool = redis.ConnectionPool.from_url(_private(redis_url, PRIVATE_DB))
    sends: list[int] = []

    class Counting(pool.connection_class):  # type: ignore[name-defined,misc]
        def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            sends.append(1)
            super().send_packed_command(command, check_health)

    pool.connection_class = Counting
    client = redis.Redis(connection_pool=pool)
    client.flushdb()
    with global_broker_kept():
        broker = make_broker(client=client)
    real = RedisQueues(DramatiqTaskQueue(broker), aioredis.Redis.from_url(_private(redis_url, PRIVATE_DB)))
    try:
        await sent(real, lambda: real.queue.publish_events([_message("account.created")]))  # connects, loads the script
        sends.clear()
        payments = [_message("payment.created", {"payment_type": "external_payment"}) for _ in range(5)]
        tasks = await sent(real, lambda: real.queue.publish_events(payments))
        assert len(sends) <= 2  # the pipeline, and redis-py's SCRIPT EXISTS check before it
        assert sorted(t.message_id for t in _of(tasks, "event")) == sorted(str(m.id) for m in payments)
        assert len(_of(tasks, "work")) == 5
    finally:
        broker.close()
        client.flushdb()
        client.close()
        await real._client.aclose()


@pytest.mark.parametrize("url", ["redis://127.0.0.1:1/0", "amqp://guest:guest@127.0.0.1:1/"])
async def test_an_unreachable_broker_is_unavailable(url: str) -> None:
    with global_broker_kept():
        broker = make_broker(url)  # nothing listens on port 1
    queue = DramatiqTaskQueue(broker)
    item = WorkItem(kind=PAYMENT, tenant_id=new_id(), target_id=new_id())
    try:
        with pytest.raises(Unavailable):
            await queue.publish_events([_message("account.created")])
        with pytest.raises(Unavailable):  # a batch (on Redis, one pipeline)
            await queue.publish_events([_message("account.created"), _message("account.created")])
        with pytest.raises(Unavailable):
            await queue.enqueue_work([item], delay_seconds=1)
        with pytest.raises(Unavailable):
            await queue.enqueue_deliveries([DeliveryRef(id=new_id(), tenant_id=new_id(), attempt=0)])
    finally:
        broker.close()


def test_idle_consumers_of_delayed_payments_and_events_poll_at_most_every_slow_poll_ms(redis_url: str) -> None:
    """An idle Redis worker fetches from its fast queues every 100 ms at most, from `SLOW_QUEUES` every `slow_poll_ms`;
    a delayed payment is still picked up (once its delay is over, within `slow_poll_ms`)."""
    pool = redis.ConnectionPool.from_url(_private(redis_url, PRIVATE_DB))
    fetches: list[str] = []

    class Counting(pool.connection_class):  # type: ignore[name-defined,misc]
        def send_command(self, *args: Any, **kwargs: Any) -> None:
            if len(args) > 6 and args[0] in ("EVALSHA", "EVAL") and args[4] == "fetch":
                fetches.append(args[6])
            super().send_command(*args, **kwargs)

    pool.connection_class = Counting
    client = redis.Redis(connection_pool=pool)
    client.flushdb()
    with global_broker_kept():
        broker = make_broker(client=client, slow_poll_ms=500)
    ran: list[float] = []
    dramatiq.actor(broker=broker, actor_name=WORK_ACTORS[PAYMENT], queue_name=WORK_QUEUE)(
        lambda: ran.append(time.monotonic()))
    for queue in (EVENTS_QUEUE, WEBHOOKS_QUEUE):
        broker.declare_queue(queue)
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        time.sleep(1.0)  # each idle consumer's backoff grows to its cap (5, 10, 20 ... ms, doubled at most)
        fetches.clear()
        time.sleep(2.0)  # at the cap, Dramatiq waits 50-100 % of it between two fetches
        queues = broker.get_declared_queues() | broker.get_declared_delay_queues()
        counts = {queue: fetches.count(queue) for queue in queues}
        assert set(counts) == {*QUEUES, *(f"{q}.DQ" for q in QUEUES)}
        for queue in SLOW_QUEUES:
            assert counts[queue] <= 2 / 0.25 + 1, counts  # every 250-500 ms: ~5 in 2 s
        for queue in queues - SLOW_QUEUES:
            assert counts[queue] >= 2 / 0.1 - 2, counts  # every 50-100 ms: ~27 in 2 s
        sent = time.monotonic()
        broker.enqueue(dramatiq.Message(queue_name=WORK_QUEUE, actor_name=WORK_ACTORS[PAYMENT], args=(), kwargs={},
                                        options={}), delay=200)
        deadline = sent + 5
        while not ran and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ran and 0.2 <= ran[0] - sent <= 0.2 + 0.5 + 0.1 + 0.7, (ran, sent)  # delay, both polls, a margin
    finally:
        worker.stop()
        broker.close()
        client.flushdb()
        client.close()

"""Nothing the outbox relay marked published is lost in a Redis failover: on a real master + replica + Sentinel whose
replica's link is stalled (a `LinkProxy` holds the replication stream back), an enqueue without `WAIT` returns,
the master dies, the Sentinel promotes the replica, and the message is gone; with `WAIT` the enqueue fails, the
outbox row stays unpublished, and the relay sends it again once the promoted master has a replica."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dramatiq
import pytest

from adapters.dramatiq.broker import (
    EVENTS_QUEUE,
    DramatiqTaskQueue,
    ReplicatedRedisBroker,
    ReplicationUnconfirmed,
    make_broker,
)
from adapters.memory.outbox import InMemoryOutboxFeed
from adapters.memory.state import StoreState
from adapters.redis.connect import RedisTopology, sync_client
from core.errors import Unavailable
from core.events import OutboxMessage
from core.ids import new_id
from core.usecases.outbox import relay_outbox
from tests.link_proxy import LinkProxy, proxied_sentinel_set
from tests.redis_servers import SENTINEL_MASTER, SentinelSet, wait_for

TIMEOUT = 0.5  # seconds an enqueue waits for its replica


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[SentinelSet, LinkProxy]]:
    with proxied_sentinel_set(tmp_path) as made:
        yield made


def broker_on(servers: SentinelSet, min_replicas: int) -> ReplicatedRedisBroker:
    topology = RedisTopology(url="", sentinels=(("127.0.0.1", servers.sentinel.port),),
                             sentinel_master=SENTINEL_MASTER)
    client = sync_client(topology)
    made = make_broker(client=client, min_replicas=min_replicas, replica_timeout=TIMEOUT)  # type: ignore[arg-type]
    assert isinstance(made, ReplicatedRedisBroker)
    return made


def event() -> OutboxMessage:
    return OutboxMessage.new(tenant_id=new_id(), topic="payment.completed", aggregate_id=new_id(),
                             payload={"amount": 100}, correlation_id=None, at=datetime.now(UTC))


def queued_ids(servers: SentinelSet, port: int) -> set[str]:
    """The Dramatiq message ids on the events queue of the Redis on `port`."""
    server = servers.master if servers.master.port == port else servers.replica
    return {json.loads(body)["message_id"] for body in server.client().hvals(f"dramatiq:{EVENTS_QUEUE}.msgs")}


def fail_over(servers: SentinelSet) -> None:
    servers.master.kill()
    wait_for(lambda: servers.master_port() == servers.replica.port, "the Sentinel's promotion of the replica")
    wait_for(lambda: servers.replica.client().info("replication")["role"] == "master", "the replica's promotion")


async def relay_until_published(feed: InMemoryOutboxFeed, queue: DramatiqTaskQueue, message: OutboxMessage) -> None:
    """Relay rounds, as the worker's relay loop runs them (an `Unavailable` round retries), until `message` is
    published; generous for a loaded machine."""
    deadline = time.monotonic() + 60
    while message.id not in feed.published:
        with contextlib.suppress(Unavailable):
            await relay_outbox(outbox=feed, queue=queue)
        assert time.monotonic() < deadline, "the relay never published the message after the failover"
        await asyncio.sleep(0.05)


async def test_without_wait_a_failover_loses_an_event_the_relay_marked_published(
        servers: tuple[SentinelSet, LinkProxy]) -> None:
    redis_set, proxy = servers
    broker = broker_on(redis_set, min_replicas=0)
    store = StoreState()
    feed = InMemoryOutboxFeed(store)
    message = event()
    store.outbox.append(message)
    proxy.hold()  # the replica's link stalls: it will not see what follows

    assert await relay_outbox(outbox=feed, queue=DramatiqTaskQueue(broker)) == 1
    assert message.id in feed.published
    assert str(message.id) in queued_ids(redis_set, redis_set.master.port)  # the master acknowledged it

    fail_over(redis_set)
    assert str(message.id) not in queued_ids(redis_set, redis_set.replica.port)  # lost, yet marked published
    broker.close()


async def test_with_wait_the_row_stays_unpublished_and_is_sent_after_the_failover(
        servers: tuple[SentinelSet, LinkProxy]) -> None:
    redis_set, proxy = servers
    broker = broker_on(redis_set, min_replicas=1)
    queue = DramatiqTaskQueue(broker)
    store = StoreState()
    feed = InMemoryOutboxFeed(store)
    before = event()
    store.outbox.append(before)
    assert await relay_outbox(outbox=feed, queue=queue) == 1  # the replica confirms: published
    assert before.id in feed.published

    message = event()
    store.outbox.append(message)
    proxy.hold()
    with pytest.raises(Unavailable, match="0 of 1 Redis replicas confirmed"):
        await relay_outbox(outbox=feed, queue=queue)
    assert message.id not in feed.published  # stays in the outbox
    # Dramatiq's own sends (a Retries retry, a dead letter) call `enqueue`, which waits the same way
    with pytest.raises(ReplicationUnconfirmed, match="0 of 1 Redis replicas confirmed 1 enqueued"):
        broker.enqueue(dramatiq.Message(queue_name=EVENTS_QUEUE, actor_name="dispatch_event", args=(), kwargs={},
                                        options={}))

    fail_over(redis_set)
    assert str(message.id) not in queued_ids(redis_set, redis_set.replica.port)  # the copy on the old master died
    # the promoted master has no replica yet (or the Sentinel does not name it yet): still unpublished
    with pytest.raises(Unavailable):
        await relay_outbox(outbox=feed, queue=queue)
    assert message.id not in feed.published

    redis_set.master.args = ["--replicaof", "127.0.0.1", str(redis_set.replica.port)]
    redis_set.master.start()  # the old master comes back as the new one's replica
    wait_for(lambda: redis_set.master.client().info("replication")["master_link_status"] == "up",
             "the old master's sync with the new one")
    await relay_until_published(feed, queue, message)  # the relay's next rounds send it again
    assert str(message.id) in queued_ids(redis_set, redis_set.replica.port)
    assert str(message.id) in queued_ids(redis_set, redis_set.master.port)  # and on its replica

    consumer = broker.consume(EVENTS_QUEUE, prefetch=10, timeout=200)  # a worker receives it from the new master
    received: list[dramatiq.Message[object]] = []
    wait_for(lambda: received.extend(m for m in [next(consumer)] if m is not None) or any(
        m.message_id == str(message.id) for m in received), "the event's delivery to a consumer")
    consumer.close()
    broker.close()

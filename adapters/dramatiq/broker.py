"""The Dramatiq broker, Redis or RabbitMQ by its URL, with the AsyncIO middleware (async actors); its readiness
probe; and the `TaskQueue` port over it."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import dramatiq
import dramatiq.errors
import pika.exceptions
import redis
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import (
    AgeLimit,
    AsyncIO,
    Callbacks,
    CurrentMessage,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from adapters.dramatiq.observe import TRACE_OPTION, Observe
from adapters.telemetry import trace_carrier
from core.errors import Unavailable
from core.events import OutboxMessage, event_body, work_for
from core.ids import new_id
from core.webhooks import DeliveryRef, delivery_batches
from core.work import PAYMENT, REFUND, WorkItem

EVENTS_QUEUE = "events"
DISPATCH_ACTOR = "dispatch_event"
WORK_QUEUE = "payments"
WORK_ACTORS = {PAYMENT: "process_payment", REFUND: "process_refund"}
WEBHOOKS_QUEUE = "webhooks"
DELIVER_ACTOR = "deliver_webhook"
_WORK_IDS = uuid.UUID("6f1c1d1e-4b0a-4c55-9a53-1f0b4d1c7a10")
#: On Redis, the messages a worker had taken (prefetched or in progress) when it died go back on their queue once its
#: heartbeat is this old and a queue's maintenance runs. Dramatiq's defaults (60 s; maintenance on 0.1 % of
#: commands, about every 100 s per queue) left them stranded for one to five minutes after a SIGKILL (measured by
#: the worker_kill chaos scenario); a live worker heartbeats on every fetch, ten times a second when idle.
HEARTBEAT_TIMEOUT_MS, MAINTENANCE_CHANCE = 20_000, 10_000  # per million commands: 1 %


#: The queues whose idle consumers may wait up to the broker's `slow_poll_ms` between two fetches, not the worker's
#: 100 ms: retries delayed by the payments' backoff (at least `PAYMENTS_PAYMENT_MIN_BACKOFF`), and the events queue
#: (only a relay without an audience, or a version before it, sends there). Every fetch is a Lua call that Redis
#: and the worker both pay for: an idle worker polling six queues ten times a second spent 7 % of a core on it.
SLOW_QUEUES = frozenset({f"{WORK_QUEUE}.DQ", EVENTS_QUEUE, f"{EVENTS_QUEUE}.DQ"})

#: The URL schemes of a RabbitMQ broker; any other URL names a Redis one.
AMQP_SCHEMES = ("amqp", "amqps")
#: What a broker raises when it cannot be reached: redis-py's errors, pika's, Dramatiq's wrapping of them.
BROKER_ERRORS = (redis.RedisError, OSError, dramatiq.errors.ConnectionClosed, dramatiq.errors.ConnectionFailed,
                 pika.exceptions.AMQPError)


def is_rabbitmq(url: str) -> bool:
    return urlsplit(url).scheme in AMQP_SCHEMES


class ReplicationUnconfirmed(redis.RedisError):
    """Fewer replicas than required confirmed an enqueue in time: the messages are on the master, but a failover
    now could lose them, so the enqueue counts as failed (the caller sends them again; consumers deduplicate)."""


class _Dispatch:
    """Dramatiq's `dispatch` script (every broker command is one call of it), queued on the calling thread's open
    pipeline if it has one, else run at once as Dramatiq does."""

    def __init__(self, script: Any, local: threading.local) -> None:
        self._script, self._local = script, local

    def __call__(self, *, args: Sequence[Any], keys: Sequence[Any]) -> Any:
        pipeline = getattr(self._local, "pipeline", None)
        if pipeline is None:
            return self._script(args=args, keys=keys)
        return self._script(args=args, keys=keys, client=pipeline)


class ReplicatedRedisBroker(RedisBroker):
    """Dramatiq's Redis broker that sends a batch of enqueues as one pipeline, and whose enqueues return only once
    `min_replicas` replicas hold them.

    Dramatiq sends each enqueue as a round trip of its own; the relay publishes four messages per external payment
    (three events and the work) and the fan-out one per subscription, so a batch (`enqueue_all`) goes as one
    pipeline: a failure anywhere in it raises, and the caller sends the whole batch again (consumers deduplicate).

    Redis replicates asynchronously, and `WAIT n timeout` waits for the writes of *the connection that sends it*
    (an idle connection's WAIT returns at once). So the enqueue scripts and the WAIT go down one connection, in one
    pipeline: `[EVALSHA dispatch …]×n, WAIT min_replicas timeout`, one round trip. Should the connection break
    (the master died), redis-py sends the whole pipeline again on a new connection, which the Sentinels point at
    the new master, so the WAIT always covers the copies it answers for. Fewer replicas than `min_replicas` in
    `timeout_ms` → `ReplicationUnconfirmed`. Every enqueue goes this way, also Dramatiq's own (Retries' retries,
    dead letters): `enqueue` is one message's batch. With `min_replicas=0` there is no WAIT, and a lone message is
    sent as Dramatiq sends it."""

    def __init__(self, *, min_replicas: int, timeout_ms: int, slow_poll_ms: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        self.min_replicas, self.timeout_ms, self.slow_poll_ms = min_replicas, timeout_ms, slow_poll_ms
        self._local = threading.local()
        self.scripts["dispatch"] = _Dispatch(self.scripts["dispatch"], self._local)

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> dramatiq.Consumer:
        """Dramatiq's consumer; on `SLOW_QUEUES` an idle one backs off to `slow_poll_ms` between fetches."""
        if queue_name in SLOW_QUEUES:
            timeout = max(timeout, self.slow_poll_ms)
        return super().consume(queue_name, prefetch, timeout)

    def enqueue(self, message: dramatiq.Message[Any], *, delay: int | None = None) -> dramatiq.Message[Any]:
        return self.enqueue_all([message], delay=delay)[0]

    def enqueue_all(self, messages: Sequence[dramatiq.Message[Any]], *,
                    delay: int | None = None) -> list[dramatiq.Message[Any]]:
        """Enqueue `messages` in one pipeline and wait for the replicas; what Dramatiq's `enqueue` returns for each.
        Dramatiq's `after_enqueue` hooks run before the pipeline is sent (none of this project's needs otherwise)."""
        if self.min_replicas <= 0 and len(messages) <= 1:
            return [super(ReplicatedRedisBroker, self).enqueue(message, delay=delay) for message in messages]
        pipeline = self.client.pipeline(transaction=False)
        self._local.pipeline = pipeline
        try:
            sent = [super(ReplicatedRedisBroker, self).enqueue(message, delay=delay) for message in messages]
        finally:
            self._local.pipeline = None
        if self.min_replicas <= 0:
            pipeline.execute()  # raises the first failed command's error: the batch is then sent again, whole
            return sent
        pipeline.wait(self.min_replicas, self.timeout_ms)
        acknowledged = int(pipeline.execute()[-1])
        if acknowledged < self.min_replicas:
            raise ReplicationUnconfirmed(f"{acknowledged} of {self.min_replicas} Redis replicas confirmed "
                                         f"{len(messages)} enqueued messages within {self.timeout_ms} ms")
        return sent


def make_broker(url: str | None = None, *, client: redis.Redis | None = None, min_replicas: int = 0,
                replica_timeout: float = 1.0, slow_poll_ms: int = 0) -> dramatiq.Broker:
    """A Dramatiq broker on `url`: RabbitMQ for `amqp://` and `amqps://`, else Redis, on `url` or on `client` (not
    made Dramatiq's global one: actors are declared on it explicitly). Given a Sentinel-managed `client`
    (`adapters.redis.connect.sync_client`), the Redis broker follows a failover: its next command asks the
    Sentinels for the new master. Dramatiq's Prometheus middleware is left out: it would listen on
    0.0.0.0; the worker exposes metrics itself.

    On RabbitMQ every publish waits for the broker's confirmation (so an enqueue that returned is stored), and the
    messages a dead consumer held return to their queue as soon as its connection closes; delays go through
    Dramatiq's delay queues (`<queue>.DQ`) on both brokers.

    On Redis, `min_replicas` > 0 makes every enqueue wait (up to `replica_timeout` seconds) until that many
    replicas hold it (`ReplicatedRedisBroker`), so a failover cannot lose an enqueue that returned; its idle
    consumers of `SLOW_QUEUES` fetch every `slow_poll_ms` at most (RabbitMQ pushes: no polling)."""
    # Observe first: its `after_*` hooks run last, so a retry or dead-letter message sent by Retries still
    # sees the message's span as current and joins its trace.
    middleware = [Observe(), AgeLimit(), TimeLimit(), ShutdownNotifications(), Callbacks(), Pipelines(), Retries(),
                  AsyncIO(), CurrentMessage()]
    if url is not None and is_rabbitmq(url):
        return RabbitmqBroker(url=url, middleware=middleware, confirm_delivery=True)
    return ReplicatedRedisBroker(url=url, client=client, middleware=middleware, heartbeat_timeout=HEARTBEAT_TIMEOUT_MS,
                                 maintenance_chance=MAINTENANCE_CHANCE, min_replicas=min_replicas,
                                 timeout_ms=max(1, round(replica_timeout * 1000)), slow_poll_ms=slow_poll_ms)


def ping_broker(broker: dramatiq.Broker) -> None:
    """Raise unless the broker answers. On RabbitMQ, the calling thread's connection (Dramatiq keeps one per
    thread) is exercised, and opened afresh once if the broker had closed it (an idle connection misses heartbeats)."""
    if isinstance(broker, RedisBroker):
        broker.client.ping()
        return
    assert isinstance(broker, RabbitmqBroker), f"no probe for {type(broker).__name__}"
    try:
        broker.connection.process_data_events(0)
    except pika.exceptions.AMQPError:
        del broker.connection
        broker.connection.process_data_events(0)


class BrokerProbe:
    """The broker's readiness probe: pings from one thread of its own, so a ping hanging on an unreachable host
    holds only that thread (later pings time out) and a RabbitMQ probe reuses one connection."""

    def __init__(self, broker: dramatiq.Broker) -> None:
        self._broker = broker
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="broker-ping")

    async def __call__(self) -> None:
        await asyncio.wrap_future(self._thread.submit(ping_broker, self._broker))

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)


def event_message(message: OutboxMessage) -> dramatiq.Message[Any]:
    """The task for one outbox message; its id is the outbox id, so consumers can deduplicate. It carries the
    event's public body (what webhooks deliver and the events feed serves), and who it belongs to."""
    event = {**event_body(message), "tenant_id": str(message.tenant_id), "aggregate_id": str(message.aggregate_id),
             "correlation_id": message.correlation_id}
    options: dict[str, Any] = {TRACE_OPTION: dict(message.trace_context)} if message.trace_context else {}
    return dramatiq.Message(queue_name=EVENTS_QUEUE, actor_name=DISPATCH_ACTOR, args=(event,), kwargs={},
                            options=options, message_id=str(message.id))


def work_message(item: WorkItem, message_id: str | None = None) -> dramatiq.Message[Any]:
    """The task that processes one payment or refund."""
    task = {"kind": item.kind, "tenant_id": str(item.tenant_id), "target_id": str(item.target_id),
            "correlation_id": item.correlation_id}
    return dramatiq.Message(queue_name=WORK_QUEUE, actor_name=WORK_ACTORS[item.kind], args=(task,), kwargs={},
                            options={}, message_id=message_id or str(new_id()))


def delivery_message(refs: Sequence[DeliveryRef]) -> dramatiq.Message[Any]:
    """The task that makes attempt `ref.attempt + 1` of each of up to `DELIVERY_BATCH` webhook deliveries, of any
    tenants (stale copies do nothing). Each ref keeps its correlation id and the trace of the event that caused it;
    the message joins the first such trace (a scheduler-sent retry has no current trace of its own), and its
    correlation id is the refs' own when they share one."""
    task: dict[str, Any] = {"refs": [
        {"tenant_id": str(ref.tenant_id), "delivery_id": str(ref.id), "attempt": ref.attempt,
         "correlation_id": ref.correlation_id, **({"trace_context": dict(ref.trace_context)} if ref.trace_context
                                                  else {})} for ref in refs]}
    if len(correlations := {ref.correlation_id for ref in refs}) == 1:
        task["correlation_id"] = correlations.pop()
    trace = next((ref.trace_context for ref in refs if ref.trace_context), None)
    options: dict[str, Any] = {TRACE_OPTION: dict(trace)} if trace else {}
    return dramatiq.Message(queue_name=WEBHOOKS_QUEUE, actor_name=DELIVER_ACTOR, args=(task,), kwargs={},
                            options=options, message_id=str(new_id()))


def delivery_refs(task: dict[str, Any]) -> list[DeliveryRef]:
    """The refs a `deliver_webhook` task carries: a batch's, or the one of a message queued before batches (one
    delivery per message, its fields at the top level)."""
    if "refs" not in task:
        return [delivery_ref(task)]
    return [delivery_ref(ref) for ref in task["refs"]]


def delivery_ref(task: dict[str, Any]) -> DeliveryRef:
    return DeliveryRef(id=uuid.UUID(task["delivery_id"]), tenant_id=uuid.UUID(task["tenant_id"]),
                       attempt=int(task["attempt"]), correlation_id=task.get("correlation_id"),
                       trace_context=dict(task.get("trace_context") or {}))


def work_item(task: dict[str, Any]) -> WorkItem:
    return WorkItem(kind=task["kind"], tenant_id=uuid.UUID(task["tenant_id"]),
                    target_id=uuid.UUID(task["target_id"]), correlation_id=task.get("correlation_id"))


class DramatiqTaskQueue:
    """The `TaskQueue` port: enqueues on the broker from a thread (redis-py and pika are blocking)."""

    def __init__(self, broker: dramatiq.Broker) -> None:
        self._broker = broker

    async def publish_events(self, messages: Sequence[OutboxMessage], *, dispatch: bool = True) -> None:
        if tasks := self._tasks(messages, dispatch):  # a batch the relay fanned out itself may start no work
            await asyncio.to_thread(self._send, tasks, None)

    async def enqueue_work(self, items: Sequence[WorkItem], *, delay_seconds: float = 0.0) -> None:
        delay = int(delay_seconds * 1000) or None
        tasks = [work_message(item) for item in items]
        if carrier := trace_carrier():  # a retry scheduled by an actor stays in the payment's trace
            for task in tasks:
                task.options.setdefault(TRACE_OPTION, carrier)
        await asyncio.to_thread(self._send, tasks, delay)

    async def enqueue_deliveries(self, refs: Sequence[DeliveryRef], *, delay_seconds: float = 0.0) -> None:
        if refs:
            await asyncio.to_thread(self._send, [delivery_message(batch) for batch in delivery_batches(refs)],
                                    int(delay_seconds * 1000) or None)

    @staticmethod
    def _tasks(messages: Sequence[OutboxMessage], dispatch: bool) -> list[dramatiq.Message[Any]]:
        tasks = [event_message(message) for message in messages] if dispatch else []
        for message in messages:  # the work a message starts; its id derives from the event's, so it is stable
            if (item := work_for(message)) is not None:
                task = work_message(item, str(uuid.uuid5(_WORK_IDS, str(message.id))))
                if message.trace_context:
                    task.options[TRACE_OPTION] = dict(message.trace_context)
                tasks.append(task)
        return tasks

    def _send(self, tasks: Sequence[dramatiq.Message[Any]], delay: int | None) -> None:
        try:
            if isinstance(self._broker, ReplicatedRedisBroker):  # one pipeline, one WAIT for the whole batch
                self._broker.enqueue_all(tasks, delay=delay)
            else:
                for task in tasks:
                    self._broker.enqueue(task, delay=delay)
        except BROKER_ERRORS as error:
            raise Unavailable(f"the task queue is unavailable: {error}") from error

"""The Redis broker with the AsyncIO middleware (async actors) and the `TaskQueue` port over it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import dramatiq
import redis
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
from core.webhooks import DeliveryRef
from core.work import PAYMENT, REFUND, WorkItem

EVENTS_QUEUE = "events"
DISPATCH_ACTOR = "dispatch_event"
WORK_QUEUE = "payments"
WORK_ACTORS = {PAYMENT: "process_payment", REFUND: "process_refund"}
WEBHOOKS_QUEUE = "webhooks"
DELIVER_ACTOR = "deliver_webhook"
_WORK_IDS = uuid.UUID("6f1c1d1e-4b0a-4c55-9a53-1f0b4d1c7a10")
#: The messages a worker had taken (prefetched or in progress) when it died go back on their queue once its
#: heartbeat is this old and a queue's maintenance runs. Dramatiq's defaults (60 s; maintenance on 0.1 % of
#: commands, about every 100 s per queue) left them stranded for one to five minutes after a SIGKILL (measured by
#: the worker_kill chaos scenario); a live worker heartbeats on every fetch, ten times a second when idle.
HEARTBEAT_TIMEOUT_MS, MAINTENANCE_CHANCE = 20_000, 10_000  # per million commands: 1 %


def make_broker(redis_url: str | None = None, *, client: redis.Redis | None = None) -> RedisBroker:
    """A Redis broker on `redis_url` or on `client` (not made Dramatiq's global one: actors are declared on it
    explicitly). Given a Sentinel-managed `client` (`adapters.redis.connect.sync_client`), the broker follows a
    failover: its next command asks the Sentinels for the new master. Dramatiq's Prometheus middleware is left
    out: it would listen on 0.0.0.0; the worker exposes metrics itself."""
    # Observe first: its `after_*` hooks run last, so a retry or dead-letter message sent by Retries still
    # sees the message's span as current and joins its trace.
    middleware = [Observe(), AgeLimit(), TimeLimit(), ShutdownNotifications(), Callbacks(), Pipelines(), Retries(),
                  AsyncIO(), CurrentMessage()]
    broker = RedisBroker(url=redis_url, client=client, middleware=middleware, heartbeat_timeout=HEARTBEAT_TIMEOUT_MS,
                         maintenance_chance=MAINTENANCE_CHANCE)  # type: ignore[no-untyped-call]
    return broker


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


def delivery_message(ref: DeliveryRef) -> dramatiq.Message[Any]:
    """The task that makes attempt `ref.attempt + 1` of one webhook delivery (stale copies do nothing)."""
    task = {"tenant_id": str(ref.tenant_id), "delivery_id": str(ref.id), "attempt": ref.attempt,
            "correlation_id": ref.correlation_id}
    # the trace of the event that caused it (a scheduler-sent retry has no current trace of its own)
    options: dict[str, Any] = {TRACE_OPTION: dict(ref.trace_context)} if ref.trace_context else {}
    return dramatiq.Message(queue_name=WEBHOOKS_QUEUE, actor_name=DELIVER_ACTOR, args=(task,), kwargs={},
                            options=options, message_id=str(new_id()))


def delivery_ref(task: dict[str, Any]) -> DeliveryRef:
    return DeliveryRef(id=uuid.UUID(task["delivery_id"]), tenant_id=uuid.UUID(task["tenant_id"]),
                       attempt=int(task["attempt"]), correlation_id=task.get("correlation_id"))


def work_item(task: dict[str, Any]) -> WorkItem:
    return WorkItem(kind=task["kind"], tenant_id=uuid.UUID(task["tenant_id"]),
                    target_id=uuid.UUID(task["target_id"]), correlation_id=task.get("correlation_id"))


class DramatiqTaskQueue:
    """The `TaskQueue` port: enqueues on the Redis broker from a thread (redis-py is blocking)."""

    def __init__(self, broker: RedisBroker) -> None:
        self._broker = broker

    async def publish_events(self, messages: Sequence[OutboxMessage]) -> None:
        await asyncio.to_thread(self._enqueue, messages)

    async def enqueue_work(self, items: Sequence[WorkItem], *, delay_seconds: float = 0.0) -> None:
        delay = int(delay_seconds * 1000) or None
        tasks = [work_message(item) for item in items]
        if carrier := trace_carrier():  # a retry scheduled by an actor stays in the payment's trace
            for task in tasks:
                task.options.setdefault(TRACE_OPTION, carrier)
        await asyncio.to_thread(self._send, tasks, delay)

    async def enqueue_deliveries(self, refs: Sequence[DeliveryRef], *, delay_seconds: float = 0.0) -> None:
        await asyncio.to_thread(self._send, [delivery_message(ref) for ref in refs], int(delay_seconds * 1000) or None)

    def _enqueue(self, messages: Sequence[OutboxMessage]) -> None:
        tasks = [event_message(message) for message in messages]
        for message in messages:  # the work a message starts; its id derives from the event's, so it is stable
            if (item := work_for(message)) is not None:
                task = work_message(item, str(uuid.uuid5(_WORK_IDS, str(message.id))))
                if message.trace_context:
                    task.options[TRACE_OPTION] = dict(message.trace_context)
                tasks.append(task)
        self._send(tasks, None)

    def _send(self, tasks: Sequence[dramatiq.Message[Any]], delay: int | None) -> None:
        try:
            for task in tasks:
                self._broker.enqueue(task, delay=delay)
        except (redis.RedisError, OSError) as error:
            raise Unavailable(f"the task queue is unavailable: {error}") from error

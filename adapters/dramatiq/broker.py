"""The Redis broker with the AsyncIO middleware (async actors) and the `TaskQueue` port over it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import AgeLimit, AsyncIO, Callbacks, Pipelines, Retries, ShutdownNotifications, TimeLimit

from core.clock import timestamp
from core.errors import Unavailable
from core.events import OutboxMessage

EVENTS_QUEUE = "events"
DISPATCH_ACTOR = "dispatch_event"


def make_broker(redis_url: str) -> RedisBroker:
    """A Redis broker made the global one. Dramatiq's Prometheus middleware is left out:
    it would listen on 0.0.0.0; the worker exposes metrics itself."""
    middleware = [AgeLimit(), TimeLimit(), ShutdownNotifications(), Callbacks(), Pipelines(), Retries(), AsyncIO()]
    broker = RedisBroker(url=redis_url, middleware=middleware)  # type: ignore[no-untyped-call]
    dramatiq.set_broker(broker)
    return broker


def event_message(message: OutboxMessage) -> dramatiq.Message[Any]:
    """The task for one outbox message; its id is the outbox id, so consumers can deduplicate."""
    event = {
        "id": str(message.id), "type": message.topic, "tenant_id": str(message.tenant_id),
        "aggregate_id": str(message.aggregate_id), "created_at": timestamp(message.created_at),
        "correlation_id": message.correlation_id, "data": {"object": message.payload},
    }
    return dramatiq.Message(queue_name=EVENTS_QUEUE, actor_name=DISPATCH_ACTOR, args=(event,), kwargs={},
                            options={}, message_id=str(message.id))


class DramatiqTaskQueue:
    """The `TaskQueue` port: enqueues on the Redis broker from a thread (redis-py is blocking)."""

    def __init__(self, broker: RedisBroker) -> None:
        self._broker = broker

    async def publish_events(self, messages: Sequence[OutboxMessage]) -> None:
        await asyncio.to_thread(self._enqueue, messages)

    def _enqueue(self, messages: Sequence[OutboxMessage]) -> None:
        try:
            for message in messages:
                self._broker.enqueue(event_message(message))
        except (redis.RedisError, OSError) as error:
            raise Unavailable(f"the task queue is unavailable: {error}") from error

"""The actor that consumes every committed domain event: metrics, then the fan-out to webhook subscriptions."""

from __future__ import annotations

import uuid
from typing import Any

import dramatiq
from loguru import logger

from adapters.dramatiq.broker import DISPATCH_ACTOR, EVENTS_QUEUE
from adapters.telemetry import trace_carrier
from core.usecases.webhook_delivery import FanOut, fan_out_event
from workers.context import WorkerContext


def declare(broker: dramatiq.Broker, context: WorkerContext) -> list[dramatiq.Actor[Any, Any]]:
    async def dispatch_event(event: dict[str, Any]) -> None:
        """Consume one committed domain event (at least once; `event["id"]` is stable across redeliveries).

        The event fans out to the tenant's webhook subscriptions that hear it: their deliveries are
        written in one transaction (once per event, however often it is redelivered) and enqueued. The worker's
        relay fans events out itself (`fan_out_events`) and counts the final payments (`payments_total`), so it
        sends no such task: this actor consumes those a relay without an `Audience` sent (and any queued
        before an upgrade; their final payments are not counted).
        """
        ready = await context.get()
        cmd = FanOut(tenant_id=uuid.UUID(event["tenant_id"]), event_id=uuid.UUID(event["id"]),
                     event_type=event["type"], created_at=event["created_at"], data=event["data"],
                     correlation_id=event.get("correlation_id"), trace_context=trace_carrier())
        refs = await fan_out_event(cmd, uow_factory=ready.deps.uow_factory, clock=ready.deps.clock,
                                   policy=ready.webhook_policy)
        if refs:
            await ready.services.queue.enqueue_deliveries(refs)
        logger.bind(event_id=event["id"], event_type=event["type"], tenant_id=event["tenant_id"],
                    aggregate_id=event["aggregate_id"], webhook_deliveries=len(refs)).info("event dispatched")

    return [dramatiq.actor(broker=broker, actor_name=DISPATCH_ACTOR, queue_name=EVENTS_QUEUE,
                           max_retries=20, min_backoff=1000, max_backoff=300_000)(dispatch_event)]

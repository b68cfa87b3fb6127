"""The actor that makes one attempt of one webhook delivery."""

from __future__ import annotations

import asyncio
from typing import Any

import dramatiq
from loguru import logger

from adapters.dramatiq.broker import DELIVER_ACTOR, WEBHOOKS_QUEUE, delivery_ref
from core.usecases.webhook_delivery import DeliveryResult, deliver_webhook
from workers.context import WorkerContext

#: How long a delivery waits for one of its worker's webhook slots, and, if none freed, how long it is
#: then sent back to the queue for.
SLOT_WAIT = 0.05
REQUEUE_DELAY = 0.25


def declare(broker: dramatiq.Broker, context: WorkerContext) -> list[dramatiq.Actor[Any, Any]]:
    async def deliver_webhook_task(task: dict[str, Any]) -> None:
        """Make one attempt of one webhook delivery (at least once; a stale or duplicate message does nothing)."""
        ref = delivery_ref(task)
        ready = await context.get()
        services = ready.services
        try:  # a slot frees within milliseconds when receivers are fast; when they are slow, do not wait
            async with asyncio.timeout(SLOT_WAIT):
                await services.webhook_slots.acquire()
        except TimeoutError:  # as many POSTs in flight as allowed: leave this thread to payments
            await services.queue.enqueue_deliveries([ref], delay_seconds=REQUEUE_DELAY)
            return
        try:
            outcome = await deliver_webhook(ref, uow_factory=ready.deps.uow_factory, sender=services.webhook_sender,
                                            clock=ready.deps.clock, policy=ready.webhook_policy)
        finally:
            services.webhook_slots.release()
        if outcome.result == DeliveryResult.SKIPPED:
            return
        await services.metrics.webhook_delivery(outcome.result)
        logger.bind(delivery_id=str(ref.id), attempt=outcome.attempt, result=outcome.result,
                    status_code=outcome.status_code, error=outcome.error, retry_in=outcome.retry_in,
                    ).log("INFO" if outcome.result == DeliveryResult.SUCCEEDED else "WARNING",
                          "webhook delivery {} attempt {}: {}", ref.id, outcome.attempt, outcome.result)

    # Receiver failures are not exceptions: they are retried on the delivery's own schedule. Exceptions here
    # are the database or Redis being down; after these retries the scheduler still finds the delivery.
    return [dramatiq.actor(broker=broker, actor_name=DELIVER_ACTOR, queue_name=WEBHOOKS_QUEUE,
                           max_retries=10, min_backoff=1000, max_backoff=60_000)(deliver_webhook_task)]

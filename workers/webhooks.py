"""Webhook delivery: the actor that POSTs one attempt, and the scheduler that sends due retries."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg
import dramatiq
from loguru import logger

from adapters.dramatiq.broker import DELIVER_ACTOR, WEBHOOKS_QUEUE, DramatiqTaskQueue, delivery_ref
from adapters.postgres.webhooks import PgDueDeliveries
from core.clock import SystemClock
from core.errors import CoreError
from core.usecases.webhook_delivery import SKIPPED, deliver_webhook, schedule_due
from core.webhooks import DeliveryPolicy
from workers.runtime import runtime

#: How long a delivery waits for one of its worker's webhook slots, and, if none freed, how long it is
#: then sent back to the queue for.
SLOT_WAIT = 0.05
REQUEUE_DELAY = 0.25


# Receiver failures are not exceptions: they are retried on the delivery's own schedule. Exceptions here
# are the database or Redis being down; after these retries the scheduler still finds the delivery.
@dramatiq.actor(actor_name=DELIVER_ACTOR, queue_name=WEBHOOKS_QUEUE, max_retries=10, min_backoff=1000,
                max_backoff=60_000)
async def deliver_webhook_task(task: dict[str, Any]) -> None:
    """Make one attempt of one webhook delivery (at least once; a stale or duplicate message does nothing)."""
    ref = delivery_ref(task)
    rt = await runtime()
    try:  # a slot frees within milliseconds when receivers are fast; when they are slow, do not wait
        async with asyncio.timeout(SLOT_WAIT):
            await rt.webhook_slots.acquire()
    except TimeoutError:  # as many POSTs in flight as allowed: leave this thread to payments
        await rt.queue.enqueue_deliveries([ref], delay_seconds=REQUEUE_DELAY)
        return
    try:
        outcome = await deliver_webhook(ref, uow=rt.deps.uow, sender=rt.webhooks, clock=rt.deps.clock,
                                        policy=rt.webhook_policy)
    finally:
        rt.webhook_slots.release()
    if outcome.result == SKIPPED:
        return
    await rt.metrics.webhook_delivery(outcome.result)
    logger.bind(delivery_id=str(ref.id), attempt=outcome.attempt, result=outcome.result,
                status_code=outcome.status_code, error=outcome.error, retry_in=outcome.retry_in,
                ).log("INFO" if outcome.result == "succeeded" else "WARNING",
                      "webhook delivery {} attempt {}: {}", ref.id, outcome.attempt, outcome.result)


async def schedule_forever(pool: asyncpg.Pool, queue: DramatiqTaskQueue, policy: DeliveryPolicy, interval: float,
                           stop: asyncio.Event) -> None:
    """Every `interval`, enqueue deliveries whose next attempt is due (any number of workers may run this)."""
    due, clock = PgDueDeliveries(pool), SystemClock()
    while not stop.is_set():
        try:
            while not stop.is_set() and await schedule_due(due=due, queue=queue, clock=clock, policy=policy) > 0:
                pass
        except CoreError as error:
            logger.warning("webhook scheduler paused: {}", error.detail)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)

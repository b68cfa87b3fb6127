"""The actor that makes one attempt of one webhook delivery."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import attrs
import dramatiq
from loguru import logger

from adapters.dramatiq.broker import DELIVER_ACTOR, WEBHOOKS_QUEUE, delivery_ref
from core.ports import WebhookSender
from core.usecases.webhook_delivery import DeliveryResult, deliver_webhook
from core.webhooks import SendResult
from workers.context import WorkerContext

#: How long a delivery waits for one of its worker's webhook slots to free when all are POSTing, and, if none
#: freed, how long it is then sent back to the queue for.
SLOT_WAIT = 0.05
REQUEUE_DELAY = 0.25


@attrs.frozen
class SlottedSender:
    """A `WebhookSender` that POSTs in one of its worker's webhook slots (`PAYMENTS_WEBHOOKS_CONCURRENCY`): the
    slot is held for the POST alone, not for the delivery's two transactions around it."""

    sender: WebhookSender
    slots: asyncio.Semaphore

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], *, within: float) -> SendResult:
        async with self.slots:
            return await self.sender.post(url, body, headers, within=within)


def declare(broker: dramatiq.Broker, context: WorkerContext) -> list[dramatiq.Actor[Any, Any]]:
    async def deliver_webhook_task(task: dict[str, Any]) -> None:
        """Make one attempt of one webhook delivery (at least once; a stale or duplicate message does nothing)."""
        ref = delivery_ref(task)
        ready = await context.get()
        services = ready.services
        if services.webhook_slots.locked():  # every slot POSTing: wait a little for one, else leave the thread
            try:
                async with asyncio.timeout(SLOT_WAIT):
                    await services.webhook_slots.acquire()
            except TimeoutError:  # as many POSTs in flight as allowed: leave this thread to payments
                await services.queue.enqueue_deliveries([ref], delay_seconds=REQUEUE_DELAY)
                return
            services.webhook_slots.release()  # a slot freed: the POST takes one (it may wait if another won it)
        outcome = await deliver_webhook(ref, uow_factory=ready.deps.uow_factory, clock=ready.deps.clock,
                                        sender=SlottedSender(services.webhook_sender, services.webhook_slots),
                                        policy=ready.webhook_policy)
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

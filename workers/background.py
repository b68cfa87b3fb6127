"""The worker's loops besides its consumers: the outbox relay, the webhook retry scheduler, housekeeping."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from loguru import logger

from app.bootstrap import Services
from core.errors import CoreError
from core.usecases.outbox import housekeep, relay_outbox, requeue_stuck
from core.usecases.webhook_delivery import schedule_due
from core.webhooks import DeliveryPolicy

POLL_INTERVAL = 1.0  # a missed notification costs at most this much delay
OUTBOX_RETENTION = timedelta(days=7)  # published events are kept a week for inspection and replay


async def relay_forever(services: Services, stop: asyncio.Event) -> None:
    """Publish outbox rows as they commit: woken by NOTIFY, polling as a safety net."""
    notified = services.outbox_notifications
    while not stop.is_set():
        await notified.listen()
        notified.event.clear()  # before draining: a notification that arrives meanwhile wakes the next round
        try:
            while not stop.is_set() and await relay_outbox(outbox=services.outbox_feed, queue=services.queue) > 0:
                pass
        except CoreError as error:
            logger.warning("outbox relay paused: {}", error.detail)
        await first(notified.event, stop, seconds=POLL_INTERVAL)


async def first(*events: asyncio.Event, seconds: float) -> None:
    """Return when any event is set or `seconds` pass; leaves no waiter behind."""
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()


async def housekeeping_forever(services: Services, stop: asyncio.Event, owner: str) -> None:
    """One worker at a time (a lease with a fencing token): re-enqueue stuck payments and refunds,
    reap expired idempotency records and week-old published outbox rows."""
    settings = services.settings
    interval = settings.worker.housekeeping_interval
    while not stop.is_set():
        try:
            now = datetime.now(UTC)
            requeued = await requeue_stuck(lease=services.lease, owner=owner, ttl_seconds=interval * 2,
                                           in_flight=services.in_flight, queue=services.queue, now=now,
                                           stuck_after=timedelta(seconds=settings.payment.stuck_after))
            if requeued:
                logger.bind(requeued=requeued).warning("housekeeping re-enqueued {} stuck payment(s)/refund(s)",
                                                       requeued)
            done = await housekeep(lease=services.lease, owner=owner, ttl_seconds=interval * 2,
                                   now=now, outbox_retention=OUTBOX_RETENTION)
            if done and any(done.values()):
                logger.bind(**done).info("housekeeping deleted expired idempotency keys and old outbox rows")
        except CoreError as error:
            logger.warning("housekeeping skipped: {}", error.detail)
        await first(stop, seconds=interval)


async def schedule_forever(services: Services, policy: DeliveryPolicy, stop: asyncio.Event) -> None:
    """Every poll interval, enqueue deliveries whose next attempt is due (any number of workers may run this)."""
    interval = services.settings.webhooks.poll_interval
    while not stop.is_set():
        try:
            while not stop.is_set() and await schedule_due(due=services.due_deliveries, queue=services.queue,
                                                           clock=services.clock, policy=policy) > 0:
                pass
        except CoreError as error:
            logger.warning("webhook scheduler paused: {}", error.detail)
        await first(stop, seconds=interval)

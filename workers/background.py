"""The worker's loops besides its consumers: the outbox relay, the webhook retry scheduler, the hold expiry sweep,
housekeeping."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from loguru import logger

from app.bootstrap import Services
from core.errors import CoreError
from core.usecases.daily_reconciliation import reconcile_yesterday
from core.usecases.holds import expire_holds
from core.usecases.outbox import RELAY_BATCH, housekeep, relay_outbox, requeue_stuck
from core.usecases.webhook_delivery import Audience, schedule_due
from core.webhooks import DeliveryPolicy

POLL_INTERVAL = 1.0  # a missed notification costs at most this much delay
#: After a failure a loop waits BACKOFF_MIN, doubling per consecutive failure up to BACKOFF_MAX, less up to
#: half at random (loops of many workers that failed together do not all come back at once).
BACKOFF_MIN, BACKOFF_MAX = 0.5, 30.0


class Episode:
    """A loop's run of consecutive failures: logged when it starts and when it ends, not at every retry."""

    def __init__(self, name: str) -> None:
        self.name, self.failures = name, 0

    def failed(self, error: Exception) -> float:
        """Record a failure; the seconds to wait before the next try."""
        self.failures += 1
        if self.failures == 1:
            if isinstance(error, CoreError):  # the database or Redis is down: expected, and it passes
                logger.warning("{} paused: {}", self.name, error.detail)
            else:  # a bug or an unforeseen failure: the loop goes on, the traceback is kept
                logger.opt(exception=error).error("{} failed; it carries on", self.name)
        wait: float = min(BACKOFF_MAX, BACKOFF_MIN * 2.0 ** (self.failures - 1))
        return wait * random.uniform(0.5, 1.0)  # jitter, not a secret

    def succeeded(self) -> None:
        if self.failures:
            logger.info("{} resumed after {} failed attempt(s)", self.name, self.failures)
            self.failures = 0


async def relay_forever(services: Services, policy: DeliveryPolicy, stop: asyncio.Event) -> None:
    """Publish outbox rows as they commit, fanning them out to webhook subscriptions and counting final payments:
    woken by NOTIFY, polling as a safety net; no failure ends it."""
    notified, episode = services.outbox_notifications, Episode("outbox relay")
    audience = Audience(uow_factory=services.uow_factory, clock=services.clock, policy=policy)
    while not stop.is_set():
        try:
            await notified.listen()  # (re)LISTEN after a lost connection; the drain below sweeps what was missed
            notified.event.clear()  # before draining: a notification that arrives meanwhile wakes the next round
            # Drained once a claim comes back short, not empty: another claim would only find what committed
            # after this one's snapshot, and that has notified (set the event) since the clear above. This spares
            # every wake-up a transaction of three round trips that finds nothing.
            while not stop.is_set() and await relay_outbox(
                    outbox=services.outbox_feed, queue=services.queue, audience=audience,
                    metrics=services.metrics) >= RELAY_BATCH:
                pass
        except Exception as error:  # the relay must outlive anything: an outage, a bug in one batch
            await first(stop, seconds=episode.failed(error))
            continue
        episode.succeeded()
        # One relay of all the workers' leads and answers notifications; the others poll, in case it cannot keep up
        # or is gone (they try to lead on each round: a stopped leader's lock ends with its connection).
        await first(*((notified.event, stop) if notified.leading else (stop,)), seconds=POLL_INTERVAL)


async def first(*events: asyncio.Event, seconds: float) -> None:
    """Return when any event is set or `seconds` pass; leaves no waiter behind."""
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()


async def every(name: str, interval: float, stop: asyncio.Event, one_round: Callable[[], Awaitable[None]],
                *, backoff_cap: float | None = None) -> None:
    """Run `one_round` every `interval` seconds until `stop`; no failure ends it. A failed round is logged once per
    episode and retried after a backoff, capped at `backoff_cap` (default: the interval)."""
    episode, cap = Episode(name), interval if backoff_cap is None else backoff_cap
    while not stop.is_set():
        try:
            await one_round()
        except Exception as error:  # the next round tries again
            await first(stop, seconds=min(cap, episode.failed(error)))
            continue
        episode.succeeded()
        await first(stop, seconds=interval)


async def housekeeping_forever(services: Services, stop: asyncio.Event, owner: str) -> None:
    """One worker at a time (a lease with a fencing token): re-enqueue stuck payments and refunds,
    reap expired idempotency records and published events past their retention (the events feed reads them
    until then), reconcile yesterday's settlement reports once a day; no failure ends it."""
    settings = services.settings
    interval = settings.worker.housekeeping_interval

    async def one_round() -> None:
        now = datetime.now(UTC)
        requeued = await requeue_stuck(lease=services.lease, owner=owner, ttl_seconds=interval * 2,
                                       in_flight=services.in_flight, queue=services.queue, now=now,
                                       stuck_after=timedelta(seconds=settings.payment.stuck_after))
        if requeued:
            logger.bind(requeued=requeued).warning("housekeeping re-enqueued {} stuck payment(s)/refund(s)",
                                                   requeued)
        done = await housekeep(lease=services.lease, owner=owner, ttl_seconds=interval * 2,
                               now=now, outbox_retention=timedelta(seconds=settings.events.retention))
        if done and any(done.values()):
            logger.bind(**done).info("housekeeping deleted expired idempotency keys and old outbox rows")
        await _reconcile(services, owner, interval * 2)

    await every("housekeeping", interval, stop, one_round)


async def sweep_holds_forever(services: Services, stop: asyncio.Event) -> None:
    """Every sweep interval, record expired the holds past their expiry, batch after batch until none is due; any
    number of workers may run this (each account's holds change under its row lock, so a hold expires once,
    whoever gets there first). One query on the `holds_due` index when nothing is due; no failure ends it."""

    async def one_round() -> None:
        while not stop.is_set() and (expired := await expire_holds(uow_factory=services.uow_factory,
                                                                    clock=services.clock)):
            logger.bind(expired=expired).info("the sweep expired {} hold(s)", expired)

    await every("hold expiry sweep", services.settings.worker.hold_sweep_interval, stop, one_round)


async def _reconcile(services: Services, owner: str, ttl_seconds: float) -> None:
    """The daily reconciliation, logged: a warning for each run that found mismatches or failed."""
    made = await reconcile_yesterday(lease=services.lease, owner=owner, ttl_seconds=ttl_seconds,
                                     uow_factory=services.uow_factory, providers=services.provider,
                                     clock=services.clock, policy=services.settings.reconcile.daily())
    for run in made or ():
        line = logger.bind(reconciliation_id=str(run.id), tenant_id=str(run.tenant_id), provider=run.provider,
                           date=run.day.isoformat(), status=run.status,
                           **{result.value: count for result, count in run.summary.items()})
        if run.mismatches or run.failure_reason:
            line.warning("reconciliation of {} {}: {} mismatch(es){}", run.provider, run.day, run.mismatches,
                         f"; failed: {run.failure_reason}" if run.failure_reason else "")
        else:
            line.info("reconciliation of {} {}: everything matched", run.provider, run.day)


async def schedule_forever(services: Services, policy: DeliveryPolicy, stop: asyncio.Event) -> None:
    """Every poll interval, enqueue deliveries whose next attempt is due (any number of workers may run this);
    no failure ends it."""

    async def one_round() -> None:
        while not stop.is_set() and await schedule_due(due=services.due_deliveries, queue=services.queue,
                                                       clock=services.clock, policy=policy) > 0:
            pass

    await every("webhook scheduler", services.settings.webhooks.poll_interval, stop, one_round,
                backoff_cap=BACKOFF_MAX)

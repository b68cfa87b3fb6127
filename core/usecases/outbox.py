"""Relay committed outbox messages to the task queue, and keep the idempotency table small."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from core.ports import EventMetrics, InFlight, Lease, OutboxFeed, TaskQueue
from core.usecases.webhook_delivery import Audience, fan_out_events

HOUSEKEEPING = "housekeeping"
#: The most messages one claim publishes. A claim that comes back with fewer has drained what it could see: a
#: message committed after its snapshot was taken NOTIFYs the relay again (`workers/background.py`).
RELAY_BATCH = 100


async def relay_outbox(
    *, outbox: OutboxFeed, queue: TaskQueue, audience: Audience | None = None, metrics: EventMetrics | None = None,
    batch: int = RELAY_BATCH,
) -> int:
    """Publish one batch of unpublished messages; how many were published.

    A message is marked published only after the queue accepted it, in the same
    claim: a crash in between publishes it again (at least once; consumers
    deduplicate on the message id, the fan-out on the event and subscription).
    Given an `audience`, the relay fans the batch out to webhook subscriptions
    (read by the claim's own statement) itself and enqueues the deliveries, so an event needs no task of its own
    (only the work it starts); without one, each event gets a `dispatch_event`
    task. Given `metrics`, the batch's final payments are counted once the
    claim has committed: a committed claim is never published again, so each
    event counts once with nothing kept per event (a crash between the commit
    and the count loses those samples; metrics never hold up the relay).
    """
    async with outbox.claim(batch, listeners=audience is not None) as claimed:
        if claimed.messages:
            if audience is None:
                await queue.publish_events(claimed.messages)
            else:
                if claimed.listeners is None:  # asked for: a feed that ignored it would drop every webhook
                    raise RuntimeError("the outbox claim returned no listeners although asked for them")
                refs = await fan_out_events(claimed.messages, audience=audience, listeners=claimed.listeners)
                await queue.publish_events(claimed.messages, dispatch=False)
                await queue.enqueue_deliveries(refs)
            claimed.mark_published()
    if metrics is not None and claimed.messages:
        await metrics.published(claimed.messages)
    return len(claimed.messages)


async def reap_idempotency_keys(
    *, lease: Lease, owner: str, ttl_seconds: float, batch: int = 1000, name: str = HOUSEKEEPING
) -> int | None:
    """Delete expired idempotency records if this process holds the housekeeping lease.

    Returns how many were deleted, or None when another process holds the lease.
    """
    token = await lease.acquire(name, owner, ttl_seconds)
    if token is None:
        return None
    return await _drain(lambda: lease.reap_idempotency_keys(name, owner, token, batch), batch)


async def housekeep(
    *, lease: Lease, owner: str, ttl_seconds: float, now: datetime, outbox_retention: timedelta,
    batch: int = 1000, name: str = HOUSEKEEPING,
) -> dict[str, int] | None:
    """Under the housekeeping lease: reap expired idempotency keys and purge outbox rows published longer ago
    than `outbox_retention` (the events feed serves them until then; unpublished rows are never purged). None
    when another process holds the lease."""
    token = await lease.acquire(name, owner, ttl_seconds)
    if token is None:
        return None
    before = now - outbox_retention
    return {
        "idempotency_keys": await _drain(lambda: lease.reap_idempotency_keys(name, owner, token, batch), batch),
        "outbox": await _drain(lambda: lease.purge_published_outbox(name, owner, token, before, batch), batch),
    }


async def requeue_stuck(
    *, lease: Lease, owner: str, ttl_seconds: float, in_flight: InFlight, queue: TaskQueue, now: datetime,
    stuck_after: timedelta, limit: int = 500, name: str = HOUSEKEEPING,
) -> int | None:
    """Under the housekeeping lease, enqueue again the payments and refunds nobody has touched for
    `stuck_after` (their worker died, or their message was lost with a broker restart); how many.
    A copy of work that was merely slow is harmless: processing is idempotent."""
    if await lease.acquire(name, owner, ttl_seconds) is None:
        return None
    stuck = await in_flight.stuck(now - stuck_after, limit)
    if stuck:
        await queue.enqueue_work(stuck)
    return len(stuck)


async def _drain(step: Callable[[], Awaitable[int]], batch: int) -> int:
    """Repeat a batched delete until a batch comes back short."""
    total = 0
    while (count := await step()) > 0:
        total += count
        if count < batch:
            break
    return total

"""Dramatiq actors. Import after `adapters.dramatiq.broker.make_broker` has set the broker."""

from __future__ import annotations

from typing import Any

import dramatiq
from loguru import logger

from adapters.dramatiq.broker import DISPATCH_ACTOR, EVENTS_QUEUE
from app.logs import correlation_id


@dramatiq.actor(actor_name=DISPATCH_ACTOR, queue_name=EVENTS_QUEUE, max_retries=20, min_backoff=1000,
                max_backoff=300_000)
async def dispatch_event(event: dict[str, Any]) -> None:
    """Consume one committed domain event (at least once; `event["id"]` is stable across redeliveries).

    Today the event is recorded in the worker's structured log, under the
    correlation id of the request that caused it; webhook fan-out hooks in here.
    """
    token = correlation_id.set(event.get("correlation_id"))
    try:
        logger.bind(actor=DISPATCH_ACTOR, event_id=event["id"], event_type=event["type"],
                    tenant_id=event["tenant_id"], aggregate_id=event["aggregate_id"]).info("event dispatched")
    finally:
        correlation_id.reset(token)

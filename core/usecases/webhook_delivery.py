"""Deliver events to webhook subscriptions: fan out to the subscriptions hearing them, reschedule due attempts
(the attempts themselves: `core.usecases.webhook_attempts`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import attrs

from core.clock import timestamp
from core.commands import Command
from core.events import CATALOGUE, Listener, OutboxMessage
from core.ids import new_id
from core.ports import Clock, DueDeliveries, TaskQueue, UnitOfWorkFactory
from core.webhooks import (
    Delivery,
    DeliveryPolicy,
    DeliveryRef,
    Subscription,
    webhook_body,
)


@attrs.frozen(kw_only=True)
class FanOut(Command):
    """One committed event, as the relay published it."""

    event_id: UUID
    event_type: str
    created_at: str
    data: dict[str, Any]
    trace_context: dict[str, str] = attrs.field(factory=dict)


async def fan_out_event(
    cmd: FanOut, *, uow_factory: UnitOfWorkFactory, clock: Clock, policy: DeliveryPolicy
) -> list[DeliveryRef]:
    """One pending delivery per subscription hearing the event, written in one transaction; the new ones.

    Each is held for the lease: the caller enqueues them at once, and the scheduler sends any it lost.
    """
    if cmd.event_type not in CATALOGUE:  # internal events (late charges, ...) are not part of the API
        return []
    async with uow_factory(read_only=True) as uow:  # most events have no listener: no transaction for them
        listening = await uow.webhooks.listening(cmd.tenant_id, cmd.event_type)
    if not listening:
        return []
    async with uow_factory() as uow:
        now = clock.now()
        body = webhook_body(str(cmd.event_id), cmd.event_type, cmd.created_at, cmd.data)
        return await uow.webhooks.fan_out([_delivery(s, cmd, body, now, policy) for s in listening])


@attrs.frozen(kw_only=True)
class Audience:
    """What the outbox relay needs to fan the events it publishes out to the tenants' webhook subscriptions."""

    uow_factory: UnitOfWorkFactory
    clock: Clock
    policy: DeliveryPolicy


async def fan_out_events(messages: Sequence[OutboxMessage], *, audience: Audience,
                         listeners: Sequence[Listener]) -> list[DeliveryRef]:
    """`fan_out_event` for a batch of committed events, as the relay publishes them: `listeners` are the enabled
    subscriptions of their tenants as the claim read them, in the statement that claimed the events (a
    subscription committed before an event is visible to a read that sees the event, so it hears the event as
    it would in `dispatch_event`); every event's deliveries are written in one transaction (an event fanned out
    before gets none again); the new ones, held for the lease (the caller enqueues them; the scheduler sends
    any it lost)."""
    if not listeners:
        return []
    now = audience.clock.now()
    deliveries = []
    for message in messages:
        listening = [s for s in listeners if s.tenant_id == message.tenant_id and s.hears(message.topic)]
        if listening:
            cmd = FanOut(tenant_id=message.tenant_id, event_id=message.id, event_type=message.topic,
                         created_at=timestamp(message.created_at) or "", data={"object": message.payload},
                         correlation_id=message.correlation_id, trace_context=dict(message.trace_context))
            body = webhook_body(str(cmd.event_id), cmd.event_type, cmd.created_at, cmd.data)
            deliveries += [_delivery(s, cmd, body, now, audience.policy) for s in listening]
    if not deliveries:
        return []
    async with audience.uow_factory() as uow:
        return await uow.webhooks.fan_out(deliveries)


def _delivery(
    subscription: Subscription | Listener, cmd: FanOut, body: str, now: datetime, policy: DeliveryPolicy
) -> Delivery:
    return Delivery(id=new_id(), tenant_id=cmd.tenant_id, subscription_id=subscription.id, event_id=cmd.event_id,
                    event_type=cmd.event_type, body=body, next_attempt_at=now + timedelta(seconds=policy.lease),
                    correlation_id=cmd.correlation_id, trace_context=cmd.trace_context, created_at=now,
                    updated_at=now)


async def schedule_due(
    *, due: DueDeliveries, queue: TaskQueue, clock: Clock, policy: DeliveryPolicy, limit: int = 500
) -> int:
    """Enqueue the deliveries whose next attempt is due (retries, redeliveries by hand, lost messages)."""
    refs = await due.claim_due(clock.now(), policy.lease, limit)
    if refs:
        await queue.enqueue_deliveries(refs)
    return len(refs)

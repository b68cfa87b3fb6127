"""Deliver events to webhook subscriptions: fan out, POST signed, retry with backoff, give up, reschedule."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import attrs

from core.clock import timestamp
from core.commands import Command
from core.events import CATALOGUE, OutboxMessage
from core.ids import new_id
from core.ports import Clock, DueDeliveries, TaskQueue, UnitOfWorkFactory, WebhookSender
from core.signatures import sign
from core.webhooks import (
    Delivery,
    DeliveryPolicy,
    DeliveryRef,
    DeliveryStatus,
    Listener,
    SendResult,
    Subscription,
    webhook_body,
)

USER_AGENT = "payments-webhooks/1"


class DeliveryResult(enum.StrEnum):
    """What one delivery attempt came to: the POST succeeded, another attempt is scheduled, the delivery
    failed for good, or the message was stale and nothing was done."""

    SUCCEEDED = "succeeded"
    RETRYING = "retrying"
    FAILED = "failed"
    SKIPPED = "skipped"


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


async def fan_out_events(messages: Sequence[OutboxMessage], *, audience: Audience) -> list[DeliveryRef]:
    """`fan_out_event` for a batch of committed events, as the relay publishes them: the subscriptions of their
    tenants read once (a subscription committed before this read hears them, as it would hear them in
    `dispatch_event`), and every event's deliveries written in one transaction (an event fanned out before gets
    none again); the new ones, held for the lease (the caller enqueues them; the scheduler sends any it lost)."""
    async with audience.uow_factory(read_only=True) as uow:  # most tenants have no subscription: no transaction
        subscriptions = await uow.webhooks.listeners({m.tenant_id for m in messages})
    if not subscriptions:
        return []
    now = audience.clock.now()
    deliveries = []
    for message in messages:
        listening = [s for s in subscriptions if s.tenant_id == message.tenant_id and s.hears(message.topic)]
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


@attrs.frozen(kw_only=True)
class DeliveryOutcome:
    """What one attempt came to; `retry_in` is set when another attempt is scheduled."""

    result: DeliveryResult
    status_code: int | None = None
    error: str | None = None
    retry_in: float | None = None
    attempt: int = 0


def delivery_headers(delivery: Delivery, secrets: list[str], timestamp: int) -> dict[str, str]:
    """Signed with every live secret; the same event id on every attempt; the request's id carried along."""
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Payments-Signature": sign(secrets, delivery.body.encode(), timestamp),
        "Payments-Event-Id": str(delivery.event_id),
        "Payments-Delivery-Id": str(delivery.id),
        "Payments-Delivery-Attempt": str(delivery.attempts),
        "X-Request-ID": delivery.correlation_id or str(delivery.id),
    }


async def deliver_webhook(
    ref: DeliveryRef, *, uow_factory: UnitOfWorkFactory, sender: WebhookSender, clock: Clock, policy: DeliveryPolicy
) -> DeliveryOutcome:
    """Make attempt `ref.attempt + 1` of a delivery: count it, POST outside any transaction, record the answer.

    A ref that is stale (the delivery moved on, or was redelivered by hand meanwhile) does nothing,
    so duplicate messages are harmless. The attempt is counted before the POST: a worker that dies
    mid-POST leaves the delivery held until its lease ends, then the scheduler retries it.
    """
    async with uow_factory() as uow:
        delivery = await uow.webhooks.lock_delivery(ref.tenant_id, ref.id)
        if delivery is None or delivery.status != DeliveryStatus.PENDING or delivery.attempts != ref.attempt:
            return DeliveryOutcome(result=DeliveryResult.SKIPPED)
        subscription = await uow.webhooks.get(ref.tenant_id, delivery.subscription_id)
        now = clock.now()
        if subscription is None or not subscription.enabled or delivery.spent(policy):
            # spent: its last attempt never recorded an answer (the worker stopped mid-POST, again and again)
            delivery.give_up("no answer was recorded for the last attempt; its attempts are spent"
                             if subscription is not None and subscription.enabled else "the webhook is disabled", now)
            uow.webhooks.save_delivery(delivery)
            return DeliveryOutcome(result=DeliveryResult.FAILED, error=delivery.last_error, attempt=delivery.attempts)
        delivery.begin_attempt(now, policy)
        uow.webhooks.save_delivery(delivery)
    headers = delivery_headers(delivery, subscription.signing_secrets(now), int(now.timestamp()))
    try:
        sent = await sender.post(subscription.url, delivery.body.encode(), headers, within=policy.timeout)
    except Exception as error:  # a sender bug or a URL it cannot use: a failed attempt, never a stuck delivery
        sent = SendResult(error=f"{type(error).__name__}: {error}"[:1000])
    return await _record(delivery, sent.status_code, sent.error, sent.ok, uow_factory=uow_factory, clock=clock,
                         policy=policy)


async def _record(
    attempted: Delivery, status_code: int | None, error: str | None, ok: bool, *, uow_factory: UnitOfWorkFactory,
    clock: Clock, policy: DeliveryPolicy,
) -> DeliveryOutcome:
    async with uow_factory() as uow:
        delivery = await uow.webhooks.lock_delivery(attempted.tenant_id, attempted.id)
        if delivery is None or delivery.attempts != attempted.attempts or delivery.status != DeliveryStatus.PENDING:
            return DeliveryOutcome(result=DeliveryResult.SKIPPED, status_code=status_code, error=error)
        now = clock.now()
        retry_in = None
        if ok:
            assert status_code is not None
            delivery.succeeded(status_code, now)
        else:
            retry_in = delivery.attempt_failed(status_code, error or f"HTTP {status_code}", now, policy)
        uow.webhooks.save_delivery(delivery)
    result = DeliveryResult.SUCCEEDED if ok else (
        DeliveryResult.RETRYING if retry_in is not None else DeliveryResult.FAILED)
    return DeliveryOutcome(result=result, status_code=status_code, error=error, retry_in=retry_in,
                           attempt=delivery.attempts)


async def schedule_due(
    *, due: DueDeliveries, queue: TaskQueue, clock: Clock, policy: DeliveryPolicy, limit: int = 500
) -> int:
    """Enqueue the deliveries whose next attempt is due (retries, redeliveries by hand, lost messages)."""
    refs = await due.claim_due(clock.now(), policy.lease, limit)
    if refs:
        await queue.enqueue_deliveries(refs)
    return len(refs)

"""The actor that makes one attempt of each webhook delivery of a batch (one message, up to 50 deliveries)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

import attrs
import dramatiq
from loguru import logger
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from adapters.dramatiq.broker import DELIVER_ACTOR, WEBHOOKS_QUEUE, delivery_refs
from adapters.telemetry import context_from, tracer
from core.ports import WebhookSender
from core.usecases.webhook_attempts import Admission, DeliverWebhooks, DeliveryResult, deliver_webhooks
from core.webhooks import DeliveryRef, SendResult
from workers.context import WorkerContext

#: How long a delivery waits for one of its worker's webhook slots to free when all are POSTing, and, if none
#: freed, how long it and the rest of its batch are then sent back to the queue for.
SLOT_WAIT = 0.2
REQUEUE_DELAY = 0.25
DELIVERY_SPAN = "webhook delivery"


@attrs.frozen
class TracedSender:
    """A `WebhookSender` that POSTs each delivery under a span of its own, a child of the batch's message span
    (so the POST's own client span is the delivery's), linked to the trace of the event that caused the delivery
    when the batch's span is in another trace."""

    sender: WebhookSender
    refs: Mapping[UUID, DeliveryRef]

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], *, within: float) -> SendResult:
        ref = self.refs.get(UUID(headers["Payments-Delivery-Id"]))
        origin = trace.get_current_span(context_from(ref.trace_context if ref else None)).get_span_context()
        current = trace.get_current_span().get_span_context()
        links = [Link(origin)] if origin.is_valid and origin.trace_id != current.trace_id else []
        with tracer().start_as_current_span(DELIVERY_SPAN, kind=SpanKind.INTERNAL, links=links, attributes={
            "payments.delivery_id": headers["Payments-Delivery-Id"],
            "payments.delivery_attempt": int(headers["Payments-Delivery-Attempt"]),
        }) as span:
            sent = await self.sender.post(url, body, headers, within=within)
            if sent.status_code is not None:
                span.set_attribute("http.response.status_code", sent.status_code)
            if not sent.ok:
                span.set_status(Status(StatusCode.ERROR, (sent.error or "")[:200]))
            return sent


def declare(broker: dramatiq.Broker, context: WorkerContext) -> list[dramatiq.Actor[Any, Any]]:
    async def deliver_webhook_task(task: dict[str, Any]) -> None:
        """Make one attempt of each delivery of the batch (at least once; stale or duplicate refs do nothing)."""
        refs = delivery_refs(task)
        ready = await context.get()
        services = ready.services
        delivered = await deliver_webhooks(
            DeliverWebhooks(refs=tuple(refs)), uow_factory=ready.deps.uow_factory, clock=ready.deps.clock,
            sender=TracedSender(services.webhook_sender, {ref.id: ref for ref in refs}), policy=ready.webhook_policy,
            admission=Admission(slots=services.webhook_slots, queue=services.queue, wait=SLOT_WAIT,
                                requeue_delay=REQUEUE_DELAY))
        done = [(ref, outcome) for ref, outcome in delivered.outcomes if outcome.result != DeliveryResult.SKIPPED]
        if done:
            await services.metrics.webhook_deliveries([outcome.result for _, outcome in done])
        for ref, outcome in done:
            logger.bind(delivery_id=str(ref.id), attempt=outcome.attempt, result=outcome.result,
                        status_code=outcome.status_code, error=outcome.error, retry_in=outcome.retry_in,
                        correlation_id=ref.correlation_id,
                        ).log("INFO" if outcome.result == DeliveryResult.SUCCEEDED else "WARNING",
                              "webhook delivery {} attempt {}: {}", ref.id, outcome.attempt, outcome.result)

    # Receiver failures are not exceptions: they are retried on the delivery's own schedule. Exceptions here
    # are the database or Redis being down; after these retries the scheduler still finds the deliveries.
    return [dramatiq.actor(broker=broker, actor_name=DELIVER_ACTOR, queue_name=WEBHOOKS_QUEUE,
                           max_retries=10, min_backoff=1000, max_backoff=60_000)(deliver_webhook_task)]

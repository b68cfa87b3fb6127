"""Dramatiq middleware that traces, labels the logs of and counts every message, and the worker's own metrics.

Each message runs under a CONSUMER span `<actor> process` whose parent is the trace context the message
carries in `options["trace_context"]` (the request that caused it), with `actor` and `correlation_id` bound
for the log lines it writes. The span and the log fields are set in the worker thread before the actor runs;
Dramatiq's AsyncIO middleware submits the actor's coroutine with `asyncio.run_coroutine_threadsafe`, which
copies that thread's context into the coroutine's task, so they hold there too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from contextvars import Token
from typing import Any

import attrs
import dramatiq
from dramatiq.broker import MessageProxy
from loguru import logger
from opentelemetry import context as otel_context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, set_span_in_context
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, PlatformCollector, ProcessCollector

from adapters.telemetry import context_from, trace_carrier, tracer

#: The message option that carries the W3C trace context (`traceparent`, `tracestate`).
TRACE_OPTION = "trace_context"

#: This worker process's own metrics (served on its metrics port, never by the API).
WORKER_REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=WORKER_REGISTRY)
PlatformCollector(registry=WORKER_REGISTRY)
WORKER_MESSAGES = Counter(
    "worker_messages", "Messages this worker processed, by actor and outcome (succeeded, failed, retried).",
    ["actor", "outcome"], registry=WORKER_REGISTRY,
)
WORKER_DURATION = Histogram(
    "worker_message_duration_seconds", "Time this worker spent on a message, by actor.", ["actor"],
    registry=WORKER_REGISTRY, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
WORKER_SHARED_UNITS = Histogram(
    "worker_shared_transaction_payments", "Payment attempts per transaction that attempts waiting together share, by "
    "step (begin, completion; 1: an attempt alone).", ["step"], registry=WORKER_REGISTRY,
    buckets=(1, 2, 4, 8, 16, 32),
)
WORKER_IN_PROGRESS = Gauge(
    "worker_messages_in_progress", "Messages this worker is processing now, by actor.", ["actor"],
    registry=WORKER_REGISTRY,
)


@attrs.define
class _Current:
    """What `before_process_message` started for the message this worker thread is processing."""

    actor: str
    started: float
    span: Span
    token: Token[otel_context.Context]
    log_fields: AbstractContextManager[None]


def correlation_of(args: tuple[Any, ...] | list[Any]) -> str | None:
    """The correlation id a task carries: `task["correlation_id"]`, or that of a dead-lettered message's task."""
    first = args[0] if args else None
    if not isinstance(first, Mapping):
        return None
    found = first.get("correlation_id")
    if isinstance(found, str):
        return found
    inner = first.get("args")  # dead_letter_work gets the failed message itself
    if isinstance(inner, (list, tuple)):
        return correlation_of(inner)
    return None


class Observe(dramatiq.Middleware):
    """Tracing, log fields and metrics for every message; put it first so its `after_*` hooks run last."""

    def __init__(self) -> None:
        self._local = threading.local()

    def before_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int | None) -> None:
        # Anything sent from inside a traced message (a retry, a dead letter, follow-up work) joins its trace.
        if TRACE_OPTION not in message.options and (carrier := trace_carrier()):
            message.options[TRACE_OPTION] = carrier

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        actor = message.actor_name
        parent = context_from(message.options.get(TRACE_OPTION))
        span = tracer().start_span(f"{actor} process", context=parent, kind=SpanKind.CONSUMER, attributes={
            "messaging.system": "dramatiq", "messaging.operation.type": "process",
            "messaging.destination.name": message.queue_name.removesuffix(".DQ"),
            "messaging.message.id": message.message_id, "payments.actor": actor,
            "payments.retries": int(message.options.get("retries", 0)),
        })
        token = otel_context.attach(set_span_in_context(span, parent))
        fields: dict[str, Any] = {"actor": actor}
        if (correlation := correlation_of(message.args)) is not None:
            fields["correlation_id"] = correlation
        log_fields = logger.contextualize(**fields)
        log_fields.__enter__()
        WORKER_IN_PROGRESS.labels(actor).inc()
        self._local.current = _Current(actor, time.perf_counter(), span, token, log_fields)

    def after_process_message(
        self, broker: dramatiq.Broker, message: MessageProxy, *, result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        # Retries ran before this hook: it failed the message if no retry was left.
        outcome = "succeeded" if exception is None else "failed" if message.failed else "retried"
        self._end(outcome, exception)

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        self._end("failed", None)

    def _end(self, outcome: str, exception: BaseException | None) -> None:
        current: _Current | None = getattr(self._local, "current", None)
        if current is None:
            return
        self._local.current = None
        WORKER_IN_PROGRESS.labels(current.actor).dec()
        WORKER_MESSAGES.labels(current.actor, outcome).inc()
        WORKER_DURATION.labels(current.actor).observe(time.perf_counter() - current.started)
        current.span.set_attribute("payments.outcome", outcome)
        if exception is not None:
            current.span.record_exception(exception)
            current.span.set_status(Status(StatusCode.ERROR, type(exception).__name__))
        current.span.end()
        current.log_fields.__exit__(None, None, None)
        otel_context.detach(current.token)


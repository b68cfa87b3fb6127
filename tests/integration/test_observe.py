"""The Dramatiq `Observe` middleware on a real worker (threads, the AsyncIO event loop thread): the trace context
and log fields it sets in the worker thread reach the async actor, follow-up messages join the trace, and the
worker's message metrics count each outcome."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AsyncIO, Retries
from loguru import logger
from opentelemetry import trace

from adapters.dramatiq.observe import TRACE_OPTION, WORKER_REGISTRY, Observe, correlation_of


@pytest.fixture
def broker() -> Iterator[StubBroker]:
    stub = StubBroker(middleware=[Observe(), Retries(), AsyncIO()])
    stub.emit_after("process_boot")
    yield stub
    stub.close()


def _count(actor: str, outcome: str) -> float:
    return WORKER_REGISTRY.get_sample_value("worker_messages_total", {"actor": actor, "outcome": outcome}) or 0.0


def test_the_actor_coroutine_sees_the_span_and_log_fields_set_in_the_worker_thread(broker: StubBroker) -> None:
    trace_id = secrets.token_hex(16)
    seen: list[dict[str, Any]] = []
    lines: list[dict[str, Any]] = []
    suffix = secrets.token_hex(3)
    first_name, second_name, failing_name = f"first_{suffix}", f"second_{suffix}", f"failing_{suffix}"

    @dramatiq.actor(broker=broker, actor_name=second_name, max_retries=0)
    async def second(task: dict[str, Any]) -> None:
        seen.append({"actor": second_name, "trace_id": trace.get_current_span().get_span_context().trace_id})

    @dramatiq.actor(broker=broker, actor_name=first_name, max_retries=0)
    async def first(task: dict[str, Any]) -> None:
        seen.append({"actor": first_name, "trace_id": trace.get_current_span().get_span_context().trace_id})
        logger.info("inside the actor")
        second.send({"correlation_id": task["correlation_id"]})  # sent from inside: joins the trace

    @dramatiq.actor(broker=broker, actor_name=failing_name, max_retries=0)
    async def failing(task: dict[str, Any]) -> None:
        raise RuntimeError("boom")

    sink = logger.add(lambda message: lines.append(dict(message.record["extra"])), level="INFO")
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=50)
    worker.start()
    try:
        parent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
        broker.enqueue(first.message_with_options(args=({"correlation_id": "corr-observe"},),
                                                  **{TRACE_OPTION: {"traceparent": parent}}))
        broker.enqueue(failing.message({"correlation_id": "corr-failing"}))
        broker.join(first.queue_name, fail_fast=False)
        worker.join()
    finally:
        worker.stop()
        logger.remove(sink)

    assert seen == [{"actor": first_name, "trace_id": int(trace_id, 16)},
                    {"actor": second_name, "trace_id": int(trace_id, 16)}]
    inside = [line for line in lines if line.get("actor") == first_name]
    assert inside and all(line["correlation_id"] == "corr-observe" for line in inside)
    assert _count(first_name, "succeeded") == 1 and _count(second_name, "succeeded") == 1
    assert _count(failing_name, "failed") == 1
    assert WORKER_REGISTRY.get_sample_value("worker_messages_in_progress", {"actor": first_name}) == 0
    assert WORKER_REGISTRY.get_sample_value("worker_message_duration_seconds_count", {"actor": first_name}) == 1


def test_correlation_ids_come_from_the_task_or_from_a_dead_lettered_message() -> None:
    assert correlation_of(({"kind": "payment", "correlation_id": "c1"},)) == "c1"
    assert correlation_of(({"args": [{"correlation_id": "c2"}], "options": {}}, {"retries": 3})) == "c2"
    assert correlation_of(()) is None
    assert correlation_of(("text",)) is None

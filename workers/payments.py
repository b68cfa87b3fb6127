"""Dramatiq actors that process payments and refunds, and record work whose retries ran out."""

from __future__ import annotations

from typing import Any

import dramatiq
from loguru import logger

from adapters.dramatiq.broker import WORK_ACTORS, WORK_QUEUE, work_item
from core.errors import Unavailable
from core.usecases.dlq import RecordDeadLetter, record_dead_letter
from core.usecases.payment_attempt import process_payment
from core.usecases.refund_attempt import process_refund
from core.usecases.worker_deps import Outcome
from core.work import PAYMENT, REFUND, WorkItem
from workers.context import WorkerContext

#: Retries of a message whose processing raised (database or Redis down, a bug): the use cases are
#: idempotent, so a retry resumes where the failed delivery stopped. Provider failures are not
#: exceptions here: they are retried on the payment's own schedule (RetryPolicy). A dependency that is down
#: (`Unavailable`: say the Redis Cluster node serving the payment's lock) is expected while it lasts: its retry is
#: logged as one warning, not as an unhandled exception with a traceback on every attempt.
INFRA_RETRIES = 10
DEAD_LETTER_ACTOR = "dead_letter_work"
WORK_OPTIONS: dict[str, Any] = {"queue_name": WORK_QUEUE, "max_retries": INFRA_RETRIES, "min_backoff": 1000,
                                "max_backoff": 60_000, "on_retry_exhausted": DEAD_LETTER_ACTOR}


def declare(broker: dramatiq.Broker, context: WorkerContext) -> list[dramatiq.Actor[Any, Any]]:
    async def run(item: WorkItem) -> None:
        # the Observe middleware has bound the message's actor and correlation id for these log lines
        ready = await context.get()
        process = process_payment if item.kind == PAYMENT else process_refund
        try:
            outcome: Outcome = await process(item, deps=ready.deps)
        except Unavailable as error:  # retried on the actor's backoff, counted towards INFRA_RETRIES as before
            logger.bind(kind=item.kind, target_id=str(item.target_id)).warning(
                "{} {}: retried later: {}", item.kind, item.target_id, error)
            raise dramatiq.Retry(str(error)) from error
        if outcome.retry_in is not None:
            await ready.services.queue.enqueue_work([item], delay_seconds=outcome.retry_in)
        logger.bind(kind=item.kind, target_id=str(item.target_id), result=outcome.result, status=outcome.status,
                    retry_in=outcome.retry_in).info("{} {}: {}", item.kind, item.target_id, outcome.result)

    async def process_payment_task(task: dict[str, Any]) -> None:
        """Charge one external payment through its provider (at least once; idempotent)."""
        await run(work_item(task))

    async def process_refund_task(task: dict[str, Any]) -> None:
        """Refund through the provider (at least once; idempotent)."""
        await run(work_item(task))

    async def dead_letter_work(message: dict[str, Any], retries: dict[str, Any]) -> None:
        """A work message failed on every retry: keep it in the dead letter queue (`payments dlq`) for re-drive."""
        (task,) = message["args"]
        item = work_item(task)
        error = (message.get("options", {}).get("traceback") or "unknown error").strip().splitlines()[-1]
        ready = await context.get()
        async with ready.deps.uow_factory() as uow:
            cmd = RecordDeadLetter(item=item, error=error, attempts=int(retries.get("retries", 0)) + 1)
            await record_dead_letter(cmd, uow=uow, clock=ready.deps.clock)
        logger.bind(kind=item.kind, target_id=str(item.target_id)).error("work dead-lettered after retries: {}",
                                                                          error)

    return [
        dramatiq.actor(broker=broker, actor_name=WORK_ACTORS[PAYMENT], **WORK_OPTIONS)(process_payment_task),
        dramatiq.actor(broker=broker, actor_name=WORK_ACTORS[REFUND], **WORK_OPTIONS)(process_refund_task),
        dramatiq.actor(broker=broker, actor_name=DEAD_LETTER_ACTOR, queue_name=WORK_QUEUE,
                       max_retries=100, max_backoff=300_000)(dead_letter_work),
    ]

"""A payment whose dependency is down (`Unavailable`: the Redis Cluster node serving its lock, say) is retried on the
work actor's backoff like any failure, but logged as one warning, not as an unhandled exception with a traceback."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import attrs
import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AsyncIO

import workers.payments
from adapters.dramatiq.broker import WORK_ACTORS
from core.errors import Unavailable
from core.work import PAYMENT, WorkItem


@attrs.define
class _Ready:
    deps: object = None


@attrs.define
class _Context:
    async def get(self) -> _Ready:
        return _Ready()


class _Seen(dramatiq.Middleware):
    """How the work actor's deliveries ended, and the messages enqueued again later (the Retries middleware's
    retries: their `retries` option counts them)."""

    def __init__(self) -> None:
        self.exceptions: list[BaseException | None] = []
        self.retried: list[int] = []

    def after_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy, *,
                              result: Any = None, exception: BaseException | None = None) -> None:
        self.exceptions.append(exception)

    def after_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int | None) -> None:
        if delay:
            self.retried.append(int(message.options.get("retries", 0)))


def test_an_unavailable_dependency_is_retried_without_an_error(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    async def lock_store_down(item: WorkItem, *, deps: object) -> None:
        raise Unavailable("lock store unavailable: the cluster is down")

    monkeypatch.setattr(workers.payments, "process_payment", lock_store_down)
    broker, seen = StubBroker(), _Seen()
    broker.add_middleware(AsyncIO())
    broker.add_middleware(seen)
    actors = {actor.actor_name: actor for actor in workers.payments.declare(broker, _Context())}  # type: ignore[arg-type]
    worker = dramatiq.Worker(broker, worker_timeout=50)
    worker.start()
    try:
        with caplog.at_level(logging.INFO, logger="dramatiq"):
            actors[WORK_ACTORS[PAYMENT]].send({"kind": PAYMENT, "tenant_id": str(uuid.uuid4()),
                                               "target_id": str(uuid.uuid4())})
            deadline = time.monotonic() + 30
            while not (seen.exceptions and seen.retried):
                assert time.monotonic() < deadline, "the message was never processed and retried"
                time.sleep(0.01)
    finally:
        worker.stop()
        broker.close()
    assert isinstance(seen.exceptions[0], dramatiq.Retry), seen.exceptions
    assert isinstance(seen.exceptions[0].__cause__, Unavailable)
    records = [r for r in caplog.records if r.name.startswith("dramatiq")]
    assert not [r for r in records if r.levelno >= logging.ERROR], [r.getMessage() for r in records]
    assert seen.retried[0] == 1  # retried (after the actor's min_backoff), not given up

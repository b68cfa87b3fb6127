"""A real worker process delivers batched `deliver_webhook` messages, and the single-delivery messages queued by
the release before batches (still in Redis at an upgrade)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import dramatiq

from adapters.dramatiq.broker import DELIVER_ACTOR, WEBHOOKS_QUEUE
from app.bootstrap import Services
from core.ids import new_id
from core.signatures import verify_signature
from core.usecases.webhook_delivery import FanOut, fan_out_event
from core.usecases.webhooks import CreateSubscription, create_subscription
from core.webhooks import DeliveryPolicy, DeliveryRef
from tests.e2e.conftest import Process, stack_env
from tests.receiver import Receiver


async def _fan_out(services: Services, tenant_id: Any, correlation_id: str) -> list[DeliveryRef]:
    """One `account.created` event's deliveries, written as the relay writes them (held for a 60 s lease, so the
    worker's scheduler does not send them during the test: only the messages below do)."""
    cmd = FanOut(tenant_id=tenant_id, event_id=new_id(), event_type="account.created",
                 created_at="2026-12-06T00:00:00.000Z", data={"object": {"id": "acc_1"}},
                 correlation_id=correlation_id)
    return await fan_out_event(cmd, uow_factory=services.uow_factory, clock=services.clock,
                               policy=DeliveryPolicy())


async def _recorded(services: Services, tenant_id: Any, count: int, timeout: float = 30) -> list[Any]:
    """The tenant's delivery rows once `count` of them are no longer pending (the worker records each answer in
    its batch's second transaction, after the receiver got it)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        rows = await services.pool.fetch(
            "SELECT id, status, attempts FROM webhook_deliveries WHERE tenant_id = $1", tenant_id)
        if len([row for row in rows if row["status"] != "pending"]) >= count:
            return list(rows)
        assert asyncio.get_running_loop().time() < deadline, f"still pending: {rows}"
        await asyncio.sleep(0.05)


async def test_a_worker_delivers_batches_and_messages_queued_before_batches(
    own_stack: tuple[Services, str, str], tmp_path: Path
) -> None:
    services, database_url, redis_url = own_stack
    receiver = Receiver().start()
    try:
        async with services.uow_factory() as uow:
            tenant_id = (await uow.tenants.get_or_create(f"batches-{new_id()}", services.clock.now())).id
            subs = [await create_subscription(CreateSubscription(tenant_id=tenant_id, url=receiver.url(path),
                                                                 events=("account.created",)),
                                              uow=uow, clock=services.clock) for path in ("/a", "/b")]
        old = await _fan_out(services, tenant_id, "req-old")
        batch = [ref for n in range(3) for ref in await _fan_out(services, tenant_id, f"req-{n}")]
        for ref in old:  # the messages of the previous release: one delivery each, its fields at the top level
            task = {"tenant_id": str(ref.tenant_id), "delivery_id": str(ref.id), "attempt": ref.attempt,
                    "correlation_id": ref.correlation_id}
            await asyncio.to_thread(services.broker.enqueue, dramatiq.Message(
                queue_name=WEBHOOKS_QUEUE, actor_name=DELIVER_ACTOR, args=(task,), kwargs={}, options={}))
        await services.queue.enqueue_deliveries(batch)  # one message of six refs
        worker = Process(["worker"], stack_env(database_url, redis_url, 8080), tmp_path / "worker.log").start()
        try:
            got = [*await asyncio.to_thread(receiver.wait, "/a", 4), *await asyncio.to_thread(receiver.wait, "/b", 4)]
            rows = await _recorded(services, tenant_id, 8)
        finally:
            assert worker.stop(signal.SIGTERM) == 0, worker.output()[-3000:]
    finally:
        receiver.stop()
    sent = [*old, *batch]
    assert {row["id"]: (row["status"], row["attempts"]) for row in rows} == {ref.id: ("succeeded", 1) for ref in sent}
    delivered = {request.headers["payments-delivery-id"]: request for request in got}
    assert len(got) == len(delivered) == 8 and set(delivered) == {str(ref.id) for ref in sent}  # each once
    secrets = {sub.url: sub.secret for sub in subs}
    for ref in sent:
        request = delivered[str(ref.id)]
        assert request.headers["x-request-id"] == ref.correlation_id  # each its own request's id, in a mixed batch
        assert verify_signature(secrets[receiver.url(request.path)], request.headers["payments-signature"],
                                request.body)

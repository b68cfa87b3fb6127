"""The worker as a real process: the relay publishes committed outbox rows through Redis to the actor."""

from __future__ import annotations

import asyncio
import secrets
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from app.bootstrap import Services
from core.money import Money
from core.usecases.accounts import CreateAccount, create_account
from core.usecases.webhooks import CreateSubscription, create_subscription
from tests.e2e.conftest import Process, stack_env


async def _published(services: Services, ids: list[object]) -> int:
    return int(await services.pool.fetchval(
        "SELECT count(*) FROM outbox WHERE aggregate_id = ANY($1::uuid[]) AND published_at IS NOT NULL", ids))


async def _wait_for(predicate: Callable[[], Awaitable[bool]], message: Callable[[], str], timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, f"condition not met in time:\n{message()[-3000:]}"
        await asyncio.sleep(0.05)


async def test_worker_relays_events_with_their_correlation_id_and_stops_cleanly(
    own_stack: tuple[Services, str, str], tmp_path: Path
) -> None:
    services, database_url, redis_url = own_stack
    worker = Process(["worker"], stack_env(database_url, redis_url, 8080, PAYMENTS_OBSERVABILITY_LOG_LEVEL="info"),
                     tmp_path / "worker.log").start()
    try:
        tenant = f"relay-{secrets.token_hex(4)}"
        ids = []
        async with services.uow_factory() as uow:
            tenant_id = (await uow.tenants.get_or_create(tenant, services.clock.now())).id
            quiet_id = (await uow.tenants.get_or_create(f"{tenant}-quiet", services.clock.now())).id
            # a receiver that never answers: the attempts fail, which this test does not look at
            await create_subscription(CreateSubscription(tenant_id=tenant_id, url="http://127.0.0.1:9/hook",
                                                         events=("account.created",)), uow=uow, clock=services.clock)
        for n in range(5):
            async with services.uow_factory() as uow:
                account = await create_account(
                    CreateAccount(tenant_id=quiet_id if n == 4 else tenant_id, user_id=f"u{n}", currency="USD",
                                  initial_balance=Money(100, "USD"), correlation_id=f"corr-{tenant}-{n}"),
                    uow=uow, clock=services.clock)
            ids.append(account.id)

        async def all_published() -> bool:
            assert worker.popen is not None and worker.popen.poll() is None, worker.output()[-3000:]
            return await _published(services, ids) == len(ids)

        await _wait_for(all_published, message=worker.output)
        # the relay fanned each event out itself, with the request's correlation id: a delivery for each event of
        # the subscribed tenant (written before the batch was marked published), none for the other's
        rows = await services.pool.fetch(
            "SELECT correlation_id, event_type FROM webhook_deliveries WHERE tenant_id = ANY($1::uuid[])",
            [tenant_id, quiet_id])
        assert sorted((row["correlation_id"], row["event_type"]) for row in rows) == [
            (f"corr-{tenant}-{n}", "account.created") for n in range(4)]
    finally:
        code = worker.stop(signal.SIGTERM)
    assert code == 0, worker.output()[-3000:]
    assert "worker stopped" in worker.output()
    # `payments worker` runs its actors, relay and background loops on uvloop (workers/main.py use_uvloop)
    assert "worker started (uvloop event loop)" in worker.output()

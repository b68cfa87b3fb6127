"""Things break and money stays right: a provider failing every call (its breaker waited out), duplicate
deliveries and two workers, a worker killed between the provider call and the commit, a Redis restart, the dead
letter queue."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from uuid import UUID

import asyncpg
import httpx
import pytest

from adapters.dramatiq.broker import DramatiqTaskQueue, make_broker
from core.work import PAYMENT, WorkItem
from tests.conftest import ROOT, new_api_key_for_url
from tests.e2e.isolated import BROKERS, Isolated, isolated_stack
from tests.e2e.payflow import assert_folds, balance, charges, funded, pay, settled


def cli(stack: Isolated, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMENTS_")}
    env.update(PAYMENTS_DATABASE_URL=stack.database_url, PAYMENTS_REDIS_URL=stack.redis.url, **stack.env())
    return subprocess.run([sys.executable, "-m", "payments", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)


async def client_for(stack: Isolated) -> httpx.AsyncClient:
    key = await new_api_key_for_url(stack.database_url)
    return httpx.AsyncClient(base_url=stack.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def ledger_ok(stack: Isolated) -> None:
    result = cli(stack, "ledger", "check")
    assert result.returncode == 0 and "ledger ok" in result.stdout, result.stdout + result.stderr


async def test_a_provider_failing_every_call_opens_the_breaker_and_payments_fail_into_the_dlq(
    admin_database_url: str, tmp_path: Path
) -> None:
    """The breaker opens; its refusals are not attempts: the payments wait for it, at most
    `PAYMENTS_PAYMENT_BREAKER_MAX_WAIT`, then fail `provider_unavailable` into the DLQ. Once the provider is
    back, a payment refused meanwhile completes without having spent attempts on the refusals."""
    with isolated_stack(admin_database_url, tmp_path, mock_env={"PAYMENTS_MOCK_FAILURE_RATE": "1.0"},
                        worker_env={"PAYMENTS_PAYMENT_BREAKER_MAX_WAIT": "5s"}) as stack:
        async with await client_for(stack) as client:
            source = await funded(client, "100.00")
            created = [(await pay(client, source, "3.00")).json()["id"] for _ in range(12)]
            assert await balance(client, source) == "64.00"
            finals = [await settled(client, pid, timeout=90) for pid in created]
            assert {(p["status"], p["failure_code"]) for p in finals} == {("failed", "provider_unavailable")}
            assert await balance(client, source) == "100.00"
            attempts, waits = [], []
            for payment in finals:
                types = await assert_folds(client, payment)
                attempts.append(types.count("payment.attempt_failed"))
                history = (await client.get(f"/api/v1/payments/{payment['id']}/events")).json()["data"]
                waits += [e["data"]["error"] for e in history if e["type"] == "payment.waiting_for_provider"]
            assert max(attempts) < 5, attempts  # refusals did not spend the attempts
            assert waits and all("circuit open" in error for error in waits), waits
            assert not await charges(stack.mock_url, created[0])

            late = (await pay(client, source, "4.00")).json()["id"]
            await _refused(client, late)
            async with httpx.AsyncClient() as http:
                assert (await http.put(f"{stack.mock_url}/_mock/config", json={"failure_rate": 0.0})).is_success
            done = await settled(client, late, timeout=60)
            assert done["status"] == "completed", done
            types = await assert_folds(client, done)
            assert types.count("payment.attempt_failed") <= 1 and "payment.waiting_for_provider" in types, types
            assert len(await charges(stack.mock_url, late)) == 1
        listing = cli(stack, "dlq", "list")
        assert listing.returncode == 0, listing.stderr
        assert all(pid in listing.stdout for pid in created), listing.stdout
        assert late not in listing.stdout
        letter = next(line.split()[0] for line in listing.stdout.splitlines() if created[0] in line)
        refused = cli(stack, "dlq", "retry", letter)
        assert refused.returncode == 1 and "is failed" in refused.stderr, refused.stdout + refused.stderr
        assert cli(stack, "dlq", "retry", "not-a-uuid").returncode == 2
        assert cli(stack, "dlq", "list", "--limit", "0").returncode == 2
        ledger_ok(stack)


async def _refused(client: httpx.AsyncClient, payment_id: str, timeout: float = 30) -> None:
    """Wait until the breaker has refused the payment's call at least once."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        history = (await client.get(f"/api/v1/payments/{payment_id}/events")).json()["data"]
        if any(e["type"] == "payment.waiting_for_provider" for e in history):
            return
        assert asyncio.get_running_loop().time() < deadline, history
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("broker", BROKERS)
async def test_dlq_retry_redrives_unfinished_work(admin_database_url: str, tmp_path: Path, broker: str) -> None:
    """A dead letter whose payment never finished (its message died on infrastructure errors) is re-driven,
    through either broker."""
    with isolated_stack(admin_database_url, tmp_path, workers=0, broker=broker) as stack:
        async with await client_for(stack) as client:
            source = await funded(client, "10.00")
            payment = (await pay(client, source, "4.00")).json()
            connection = await asyncpg.connect(stack.database_url)
            try:
                tenant = await connection.fetchval("SELECT tenant_id FROM payments WHERE id = $1",
                                                   UUID(payment["id"]))
                letter = await connection.fetchval(
                    """INSERT INTO dead_letters (id, tenant_id, kind, target_id, error, attempts, created_at)
                       VALUES (gen_random_uuid(), $1, 'payment', $2, 'database unavailable', 11, now())
                       RETURNING id""", tenant, UUID(payment["id"]))
                # the relay never ran (no worker); take the queued message away so only the re-drive can finish it
                await connection.execute("UPDATE outbox SET published_at = now()")
            finally:
                await connection.close()
            result = cli(stack, "dlq", "retry", str(letter))
            assert result.returncode == 0 and "re-enqueued payment" in result.stdout, result.stdout + result.stderr
            stack.add_worker(PAYMENTS_PAYMENT_STUCK_AFTER="1h")
            assert (await settled(client, payment["id"]))["status"] == "completed"
        assert "yes" in cli(stack, "dlq", "list").stdout


async def test_duplicate_deliveries_and_two_workers_charge_once(admin_database_url: str, tmp_path: Path) -> None:
    mock_env = {"PAYMENTS_MOCK_LATENCY": "50ms"}
    # half the first attempts fail, by design: the breaker must not open here
    worker_env = {"PAYMENTS_PAYMENT_BREAKER_FAILURE_RATE": "1.0", "PAYMENTS_PAYMENT_BREAKER_WINDOW": "1000"}
    with isolated_stack(admin_database_url, tmp_path, workers=2, mock_env=mock_env, worker_env=worker_env) as stack:
        async with await client_for(stack) as client:
            source = await funded(client, "1000.00")
            created = [(await pay(client, source, "2.00", outcome=("succeed", "fail_transient:1")[n % 2])).json()
                       for n in range(40)]
            broker = make_broker(stack.broker)
            queue = DramatiqTaskQueue(broker)
            connection = await asyncpg.connect(stack.database_url)
            tenant_id = await connection.fetchval("SELECT tenant_id FROM payments WHERE id = $1",
                                                  UUID(created[0]["id"]))
            await connection.close()
            items = [WorkItem(kind=PAYMENT, tenant_id=tenant_id, target_id=UUID(p["id"])) for p in created]
            for _ in range(3):  # every payment delivered four times in all, to two workers
                await queue.enqueue_work(items)
            broker.close()
            finals = [await settled(client, p["id"], timeout=60) for p in created]
            assert {p["status"] for p in finals} == {"completed"}
            for payment in finals:
                types = await assert_folds(client, payment)
                assert types.count("payment.completed") == 1 and types.count("payment.processing") == 1
                assert len(await charges(stack.mock_url, payment["id"])) == 1
            assert await balance(client, source) == "920.00"
        ledger_ok(stack)


async def test_a_worker_killed_between_the_provider_call_and_the_commit(
    admin_database_url: str, tmp_path: Path
) -> None:
    """SIGKILL while the provider's answer is on its way: the charge exists, the payment is still processing.
    After a restart the payment completes once and the mock shows one charge."""
    with isolated_stack(admin_database_url, tmp_path) as stack:
        async with await client_for(stack) as client:
            source = await funded(client, "50.00")
            payment = (await pay(client, source, "9.00", mock_delay_ms="700")).json()
            deadline = asyncio.get_running_loop().time() + 30
            while not await charges(stack.mock_url, payment["id"]):  # charged; the answer is 700 ms away
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.01)
            stack.workers[0].stop(signal.SIGKILL)
            assert (await client.get(f"/api/v1/payments/{payment['id']}")).json()["status"] == "processing"
            stack.add_worker()
            done = await settled(client, payment["id"], timeout=60)
            assert done["status"] == "completed"
            assert await assert_folds(client, done) == ["payment.created", "payment.processing", "payment.completed"]
            recorded = await charges(stack.mock_url, payment["id"])
            assert len(recorded) == 1 and recorded[0]["requests"] >= 2
            assert await balance(client, source) == "41.00"
        ledger_ok(stack)


async def test_redis_restarted_while_payments_are_in_flight(admin_database_url: str, tmp_path: Path) -> None:
    """Messages queued or scheduled in Redis are lost with it (this one keeps nothing on disk); housekeeping
    finds the untouched payments and enqueues them again. (The breaker is set never to open, so that the
    scripted transient failures test the restart, not the breaker.)"""
    worker_env = {"PAYMENTS_PAYMENT_BREAKER_FAILURE_RATE": "1.0", "PAYMENTS_PAYMENT_BREAKER_WINDOW": "1000"}
    with isolated_stack(admin_database_url, tmp_path, mock_env={"PAYMENTS_MOCK_LATENCY": "100ms"},
                        worker_env=worker_env) as stack:
        async with await client_for(stack) as client:
            source = await funded(client, "1000.00")
            created = [(await pay(client, source, "1.00", outcome=("succeed", "fail_transient:2")[n % 2])).json()
                       for n in range(30)]
            stack.redis.stop()
            more = [(await pay(client, source, "1.00")).json() for _ in range(10)]  # the API does not need Redis
            stack.redis.start()
            finals = [await settled(client, p["id"], timeout=90) for p in created + more]
            assert {p["status"] for p in finals} == {"completed"}, [
                [(e["type"], e["data"].get("error")) for e in
                 (await client.get(f"/api/v1/payments/{p['id']}/events")).json()["data"]]
                for p in finals if p["status"] != "completed"][:2]
            for payment in finals:
                assert len(await charges(stack.mock_url, payment["id"])) == 1
                types = await assert_folds(client, payment)
                assert types.count("payment.completed") == 1
            assert await balance(client, source) == "960.00"
        ledger_ok(stack)


@pytest.mark.parametrize("broker", BROKERS)
async def test_work_that_fails_on_every_dramatiq_retry_lands_in_the_dlq(
    admin_database_url: str, tmp_path: Path, broker: str
) -> None:
    """The work actors hand a message whose retries ran out (`on_retry_exhausted`) to `dead_letter_work`,
    which keeps it in PostgreSQL; here that hand-over is sent as Dramatiq's Retries middleware sends it. The
    project's DLQ is that table on either broker (Dramatiq's own `<queue>.XQ` only ever gets what
    `dead_letter_work` itself fails on), so `payments dlq list` shows it the same."""
    import dramatiq

    from adapters.dramatiq.broker import WORK_QUEUE, work_message
    from workers.payments import DEAD_LETTER_ACTOR, INFRA_RETRIES, WORK_OPTIONS

    assert WORK_OPTIONS["on_retry_exhausted"] == DEAD_LETTER_ACTOR
    with isolated_stack(admin_database_url, tmp_path, workers=1, broker=broker) as stack:
        async with await client_for(stack) as client:
            source = await funded(client, "10.00")
            payment = (await pay(client, source, "1.00")).json()
            await settled(client, payment["id"])
        connection = await asyncpg.connect(stack.database_url)
        tenant_id = await connection.fetchval("SELECT tenant_id FROM payments WHERE id = $1", UUID(payment["id"]))
        failed = work_message(WorkItem(kind=PAYMENT, tenant_id=tenant_id, target_id=UUID(payment["id"]),
                                       correlation_id="corr-dead"))
        error = "asyncpg.exceptions.CannotConnectNowError: the database is starting"
        failed.options["traceback"] = f"Traceback ...\n{error}"
        sender = make_broker(stack.broker)
        exhausted = {"retries": INFRA_RETRIES, "max_retries": INFRA_RETRIES}
        sender.enqueue(dramatiq.Message(queue_name=WORK_QUEUE, actor_name=DEAD_LETTER_ACTOR,
                                        args=(failed.asdict(), exhausted), kwargs={}, options={}))
        sender.close()
        try:
            deadline = asyncio.get_running_loop().time() + 30
            while (row := await connection.fetchrow("SELECT * FROM dead_letters WHERE target_id = $1",
                                                    UUID(payment["id"]))) is None:
                assert asyncio.get_running_loop().time() < deadline, stack.workers[0].output()[-3000:]
                await asyncio.sleep(0.05)
        finally:
            await connection.close()
        assert (row["kind"], row["attempts"], row["correlation_id"]) == ("payment", INFRA_RETRIES + 1, "corr-dead")
        assert row["error"] == error
        listing = cli(stack, "dlq", "list")
        assert payment["id"] in listing.stdout and "CannotConnectNowError" in listing.stdout

"""API.md §8 scale-out: two API processes and two worker processes on one database and one RabbitMQ vhost, one
worker SIGKILLed mid-load, every payment still ending exactly once and the ledger clean; and `serve --workers 2`,
whose `/metrics` counts the requests of both its processes whichever one answers the scrape."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from uuid import UUID

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import new_api_key_for_url
from tests.e2e.conftest import Process, free_port, stack_env, wait_ready
from tests.e2e.isolated import isolated_stack
from tests.e2e.payflow import assert_folds, balance, charges, funded, pay, settled
from tests.e2e.test_resilience import ledger_ok

PAYMENTS = 48


async def _terminal(connection: asyncpg.Connection, ids: list[str]) -> int:
    count: int = await connection.fetchval(
        "SELECT count(*) FROM payments WHERE id = ANY($1::uuid[]) AND status IN ('completed', 'failed')",
        [UUID(pid) for pid in ids])
    return count


async def test_two_apis_and_two_workers_on_rabbitmq_survive_a_worker_killed_mid_load(
    admin_database_url: str, tmp_path: Path
) -> None:
    """Payments are created through both APIs (a third need a transient failure retried on a delay, i.e. through
    RabbitMQ's delay queue); once some have finished, worker 0 is SIGKILLed. The messages it held return to the
    queue when its connection drops, and worker 1 finishes everything: each payment completed once, charged once."""
    worker_env = {"PAYMENTS_PAYMENT_BREAKER_FAILURE_RATE": "1.0", "PAYMENTS_PAYMENT_BREAKER_WINDOW": "1000"}
    with isolated_stack(admin_database_url, tmp_path, workers=2, broker="rabbitmq", worker_env=worker_env,
                        mock_env={"PAYMENTS_MOCK_LATENCY": "200ms"}) as stack:
        second_url, _ = stack.add_api()
        for url in (stack.base_url, second_url):  # each API checks the broker it is configured with
            ready = httpx.get(f"{url}/health/ready", timeout=10).json()
            assert ready == {"status": "ready", "checks": {"database": "ok", "redis": "ok", "migrations": "ok",
                                                           "broker": "ok"}}, ready
        key = await new_api_key_for_url(stack.database_url)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=stack.base_url, headers=headers, timeout=30) as first, \
                httpx.AsyncClient(base_url=second_url, headers=headers, timeout=30) as second:
            source = await funded(first, "1000.00")
            outcomes = ("succeed", "succeed", "fail_transient:1")
            answers = await asyncio.gather(*(pay((first, second)[n % 2], source, "2.00", outcome=outcomes[n % 3])
                                             for n in range(PAYMENTS)))
            assert {answer.status_code for answer in answers} == {202}, [a.text for a in answers][:3]
            created = [answer.json()["id"] for answer in answers]
            connection = await asyncpg.connect(stack.database_url)
            try:
                deadline = asyncio.get_running_loop().time() + 60
                while (done_at_kill := await _terminal(connection, created)) < 6:
                    assert asyncio.get_running_loop().time() < deadline, stack.workers[0].output()[-3000:]
                    await asyncio.sleep(0.02)
                stack.workers[0].stop(signal.SIGKILL)
            finally:
                await connection.close()
            assert done_at_kill < PAYMENTS, "the load was over before the kill: nothing was tested"
            finals = [await settled((first, second)[n % 2], pid, timeout=120) for n, pid in enumerate(created)]
            assert {p["status"] for p in finals} == {"completed"}, [p for p in finals if p["status"] != "completed"]
            delayed_retries = 0
            for n, payment in enumerate(finals):
                types = await assert_folds(second, payment)
                assert types.count("payment.completed") == 1 and "payment.failed" not in types, types
                recorded = await charges(stack.mock_url, payment["id"])
                assert [c["status"] for c in recorded] == ["succeeded"], recorded
                # (a transient failure whose request died with worker 0 is not recorded as an attempt)
                delayed_retries += types.count("payment.attempt_failed")
            assert delayed_retries > 0  # retries went through the delay queue
            assert await balance(second, source) == f"{1000 - 2 * PAYMENTS}.00"
        ledger_ok(stack)


def _health_requests(base_url: str) -> float:
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "http_requests_total" and sample.labels.get("route") == "/health")


async def test_serve_with_two_workers_counts_the_requests_of_both_in_every_scrape(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    """Requests go to both processes (until each has written its metrics file); every scrape, answered by either
    process, counts all of them. The multiprocess directory is gone once `serve` stops."""
    port = free_port()
    env = stack_env(database_url, redis_url, port, TMPDIR=str(tmp_path))  # where `serve` makes its metrics directory
    serve = Process(["serve", "--workers", "2"], env, tmp_path / "serve.log")
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base_url, serve.start(), timeout=60)

        async def one() -> int:
            async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:  # a connection of its own
                return (await http.get("/health")).status_code

        sent, writers = 0, set()
        while len(writers) < 2:  # the kernel hands connections to either process: until both have had some
            assert sent < 2000, f"one process took every connection: {writers}"
            assert set(await asyncio.gather(*(one() for _ in range(20)))) == {200}
            sent += 20
            writers = {path.stem.split("_")[-1] for path in tmp_path.glob("payments-api-metrics-*/counter_*.db")}
        assert [_health_requests(base_url) for _ in range(6)] == [sent] * 6
    finally:
        assert serve.stop() == 0, serve.output()[-3000:]
    assert not list(tmp_path.glob("payments-api-metrics-*")), "the metrics directory outlived serve"

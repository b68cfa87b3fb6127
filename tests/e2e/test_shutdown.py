"""Graceful shutdown: SIGTERM under load loses no request the API accepted and no message the worker held."""

from __future__ import annotations

import asyncio
import secrets
import signal
from collections import Counter
from pathlib import Path

import asyncpg
import httpx

from tests.conftest import new_api_key_for_url
from tests.e2e.isolated import isolated_stack
from tests.e2e.payflow import charges, funded, pay, settled


async def test_sigterm_drains_the_api_and_the_worker(admin_database_url: str, tmp_path: Path) -> None:
    mock_env = {"PAYMENTS_MOCK_LATENCY": "300ms"}
    with isolated_stack(admin_database_url, tmp_path, mock_env=mock_env) as stack:
        key = await new_api_key_for_url(stack.database_url)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=stack.base_url, headers=headers, timeout=30) as client:
            source = await funded(client, "10000.00")
            # the worker: SIGTERM while it holds payments half-way through their provider calls
            created = [(await pay(client, source, "1.00")).json()["id"] for _ in range(20)]
            await settled(client, created[0], {"processing", "completed"})
            assert stack.workers[0].stop(signal.SIGTERM, timeout=60) == 0, stack.workers[0].output()[-3000:]
            assert "worker stopped" in stack.workers[0].output()
            stack.add_worker()
            finals = [await settled(client, pid, timeout=60) for pid in created]
            assert {p["status"] for p in finals} == {"completed"}
            for pid in created:
                assert len(await charges(stack.mock_url, pid)) == 1
            sources = [await funded(client, "100.00") for _ in range(16)]  # no hot row: one source per client

        # the API: one connection per request, so "refused" can only mean "never accepted"
        fresh = httpx.AsyncClient(base_url=stack.base_url, headers=headers, timeout=30,
                                  limits=httpx.Limits(max_keepalive_connections=0))
        outcomes: Counter[str] = Counter()
        sent_after_term = 0
        term = asyncio.Event()
        dropped: list[str] = []
        details: list[str] = []

        async def load(source: str) -> None:
            nonlocal sent_after_term
            body = {"payment_type": "external_payment", "source_account_id": source, "amount": "0.01",
                    "currency": "USD", "provider": "stripe"}
            while True:
                key = secrets.token_hex(12)
                try:
                    answer = await fresh.post("/api/v1/payments", json=body, headers={"Idempotency-Key": key})
                except httpx.ConnectError:
                    outcomes["refused"] += 1
                    return
                except httpx.HTTPError:  # the connection closed without an answer: checked below
                    dropped.append(key)
                    outcomes["refused"] += 1
                    return
                outcomes[str(answer.status_code)] += 1
                if answer.status_code != 202:
                    details.append(answer.text)
                if term.is_set():
                    sent_after_term += 1

        async with fresh:
            tasks = [asyncio.create_task(load(source)) for source in sources]
            await asyncio.sleep(1.0)
            term.set()
            code = await asyncio.to_thread(stack.api.stop, signal.SIGTERM, 60)
            await asyncio.wait_for(asyncio.gather(*tasks), 60)
        assert code == 0, stack.api.output()[-3000:]
        # A connection still in the kernel's accept queue when the listener closes is reset: the application
        # never saw it. Whatever the API did see, it answered: no dropped request left an effect behind.
        connection = await asyncpg.connect(stack.database_url)
        try:
            assert await connection.fetch("SELECT key FROM idempotency_keys WHERE key = ANY($1)", dropped) == []
        finally:
            await connection.close()
        assert set(outcomes) <= {"202", "refused"}, (outcomes, details[:3])
        assert outcomes["202"] > 16 and sent_after_term >= 1, (outcomes, sent_after_term)
        assert outcomes["refused"] == 16, outcomes  # every client ended on a connection the API did not take

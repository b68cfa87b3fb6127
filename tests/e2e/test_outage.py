"""PostgreSQL restarted under load (API.md §1): the API answers 503 with Retry-After, never 500; every
acknowledged transfer is there afterwards; the worker lives on and completes payments; the ledger holds."""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal
from pathlib import Path

import httpx

from tests.e2e.helpers import API, key, open_account, transfer_body
from tests.e2e.isolated import PrivatePostgres, isolated_stack
from tests.e2e.payflow import funded, pay, settled
from tests.e2e.test_resilience import client_for, ledger_ok

CLIENTS, RESTARTS = 8, 2


async def _until_answered(client: httpx.AsyncClient, path: str, seconds: float = 60.0) -> httpx.Response:
    """The first answer that is not a 503 (the database may still be coming back)."""
    async with asyncio.timeout(seconds):
        while (response := await client.get(path)).status_code == 503:
            await asyncio.sleep(0.1)
    return response


async def test_postgresql_restarts_under_load_answer_503_never_500_and_lose_nothing(tmp_path: Path) -> None:
    postgres = PrivatePostgres(tmp_path / "postgres").start()
    try:
        with isolated_stack(postgres.url, tmp_path / "stack", workers=1) as stack:
            async with await client_for(stack) as client:
                accounts = [(await open_account(client, "1000.00", user_id=f"user-{i}"))["id"]
                            for i in range(CLIENTS * 2)]
                statuses: Counter[int] = Counter()
                acknowledged: list[str] = []
                stop = asyncio.Event()

                async def load(index: int) -> None:
                    source, destination = accounts[2 * index], accounts[2 * index + 1]
                    while not stop.is_set():
                        try:
                            response = await client.post(f"{API}/transfers", json=transfer_body(
                                source, destination, "0.01"), headers={"Idempotency-Key": key()})
                        except httpx.TransportError:  # the API itself must never drop a request
                            statuses[-1] += 1
                            continue
                        statuses[response.status_code] += 1
                        if response.status_code == 201:
                            acknowledged.append(response.json()["id"])
                        elif response.status_code == 503:
                            assert response.headers["Retry-After"].isdigit()
                            await asyncio.sleep(0.05)

                clients = [asyncio.create_task(load(i)) for i in range(CLIENTS)]
                for _ in range(RESTARTS):
                    await asyncio.sleep(1.0)
                    await asyncio.to_thread(postgres.restart)
                await asyncio.sleep(1.5)  # load goes on against the recovered database
                stop.set()
                await asyncio.gather(*clients)

                assert set(statuses) <= {201, 503}, statuses  # no 500, no dropped connection, nothing else
                assert statuses[201] > 0 and statuses[503] > 0, statuses  # the restarts were felt, and survived
                for payment_id in acknowledged:  # every acknowledged write committed
                    response = await _until_answered(client, f"{API}/payments/{payment_id}")
                    assert response.status_code == 200 and response.json()["status"] == "completed"
                balances = [Decimal((await _until_answered(client, f"{API}/accounts/{account_id}/balance")).json()
                                    ["balance"]) for account_id in accounts]
                assert sum(balances) == len(accounts) * Decimal("1000.00"), "money was neither created nor destroyed"
                sources = sum(balances[0::2])  # each client moves 0.01 from an even account to the next one
                assert sources == CLIENTS * Decimal("1000.00") - Decimal("0.01") * len(acknowledged)

                # the worker lived through the restarts: a new external payment completes end to end
                payment = (await pay(client, await funded(client, "10.00"), "1.00")).json()
                assert (await settled(client, payment["id"], timeout=60))["status"] == "completed"
                assert all(worker.popen is not None and worker.popen.poll() is None for worker in stack.workers)
            ledger_ok(stack)
    finally:
        postgres.stop()

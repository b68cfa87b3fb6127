"""Helpers for external payment tests: create payments, wait for their outcome, read the mock's records."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httpx

from tests.e2e.apiflow import STATE
from tests.e2e.helpers import API, open_account

TERMINAL = {"completed", "failed", "cancelled", "refunded", "partially_refunded"}


async def pay(
    client: httpx.AsyncClient, source: str, amount: str = "10.00", *, provider: str = "stripe",
    outcome: str | None = None, currency: str = "USD", **metadata: str,
) -> httpx.Response:
    if outcome is not None:
        metadata["mock_outcome"] = outcome
    body: dict[str, Any] = {"payment_type": "external_payment", "source_account_id": source, "amount": amount,
                            "currency": currency, "provider": provider, "metadata": metadata}
    return await client.post("/api/v1/payments", json=body, headers={"Idempotency-Key": secrets.token_hex(8)})


async def settled(
    client: httpx.AsyncClient, payment_id: str, statuses: set[str] | None = None, timeout: float = 30,
) -> dict[str, Any]:
    """Poll the payment until its status is in `statuses` (default: any terminal one)."""
    wanted = statuses or TERMINAL
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        payment: dict[str, Any] = (await client.get(f"/api/v1/payments/{payment_id}")).json()
        if payment["status"] in wanted:
            return payment
        if asyncio.get_running_loop().time() > deadline:
            history = (await client.get(f"/api/v1/payments/{payment_id}/events")).json()["data"]
            steps = [(e["type"], e["data"].get("error")) for e in history]
            raise AssertionError(f"payment stuck: {payment}\nevents: {steps}")
        await asyncio.sleep(0.05)


async def refund_settled(
    client: httpx.AsyncClient, payment_id: str, refund_id: str, timeout: float = 30
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        refunds = (await client.get(f"/api/v1/payments/{payment_id}/refunds", params={"limit": 100})).json()["data"]
        refund: dict[str, Any] = next(r for r in refunds if r["id"] == refund_id)
        if refund["status"] != "pending":
            return refund
        assert asyncio.get_running_loop().time() < deadline, f"refund stuck: {refund}"
        await asyncio.sleep(0.05)


async def charges(mock_url: str, key: str) -> list[dict[str, Any]]:
    """The mock's records for one idempotency key (the payment id)."""
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"{mock_url}/_mock/charges", params={"idempotency_key": key})
    data: list[dict[str, Any]] = answer.json()["data"]
    return data


async def funded(client: httpx.AsyncClient, balance: str = "100.00", currency: str = "USD") -> str:
    account_id: str = (await open_account(client, balance, currency=currency))["id"]
    return account_id


async def balance(client: httpx.AsyncClient, account_id: str) -> str:
    value: str = (await client.get(f"/api/v1/accounts/{account_id}/balance")).json()["balance"]
    return value


async def assert_folds(client: httpx.AsyncClient, payment: dict[str, Any]) -> list[str]:
    """Folding the payment's events gives the stored payment (in sequence order); returns the event types in order."""
    answer = await client.get(f"{API}/payments/{payment['id']}/events")
    assert answer.status_code == 200, answer.text
    history: list[dict[str, Any]] = answer.json()["data"]
    assert [e["sequence"] for e in history] == sorted(e["sequence"] for e in history)
    state: dict[str, Any] = {}
    for event in history:
        state.update({k: event["data"][k] for k in STATE if k in event["data"]})
    assert state == {k: payment[k] for k in STATE}, (state, payment)
    return [e["type"] for e in history]

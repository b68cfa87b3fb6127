"""A first walk through the API: accounts, a transfer, its replay."""

from __future__ import annotations

import httpx


async def test_accounts_and_a_transfer(client: httpx.AsyncClient) -> None:
    alice = (await client.post("/api/v1/accounts", json={"user_id": "alice", "currency": "USD",
                                                         "initial_balance": "100.00"})).json()
    bob = (await client.post("/api/v1/accounts", json={"user_id": "bob", "currency": "USD"})).json()
    body = {"source_account_id": alice["id"], "destination_account_id": bob["id"], "amount": "30.00", "currency": "USD"}
    first = await client.post("/api/v1/transfers", json=body, headers={"Idempotency-Key": "t-1"})
    assert first.status_code == 201, first.text
    again = await client.post("/api/v1/transfers", json=body, headers={"Idempotency-Key": "t-1"})
    assert again.status_code == 201 and again.content == first.content
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (await client.get(f"/api/v1/accounts/{alice['id']}/balance")).json()["balance"] == "70.00"
    assert (await client.get(f"/api/v1/accounts/{bob['id']}/balance")).json()["balance"] == "30.00"

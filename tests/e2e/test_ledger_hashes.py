"""API.md §4 tamper-evident entries as a client sees them: `GET /accounts/{id}/transactions` shows each entry's
`hash`, the served OpenAPI document describes it, and the chain verifies from the API's JSON alone."""

from __future__ import annotations

import httpx
import jsonschema
import pytest

from tests.e2e.helpers import API, key, ledger_of, open_account, transfer

pytestmark = pytest.mark.usefixtures("no_server_errors")


async def test_transactions_show_hashes_a_client_can_verify(client: httpx.AsyncClient) -> None:
    usd = [await open_account(client, "100.00", user_id=f"u{n}") for n in range(2)]
    kwd = [await open_account(client, "1.500", currency="KWD", user_id=f"k{n}") for n in range(2)]
    paid = []
    for amount in ("0.01", "12.34", "0.99"):
        response = await transfer(client, usd[0]["id"], usd[1]["id"], amount)
        assert response.status_code == 201, response.text
        paid.append(response.json())
    assert (await transfer(client, usd[1]["id"], usd[0]["id"], "5.00")).status_code == 201
    assert (await transfer(client, kwd[0]["id"], kwd[1]["id"], "0.001", "KWD")).status_code == 201
    refund = await client.post(f"{API}/payments/{paid[1]['id']}/refund", json={"amount": "2.34"},
                               headers={"Idempotency-Key": key()})
    assert refund.status_code == 201, refund.text

    document = (await client.get("/openapi.json")).json()
    schema = {**document["components"]["schemas"]["LedgerEntry"], "components": document["components"]}
    assert "hash" in schema["required"] and schema["properties"]["hash"]["pattern"] == "^[0-9a-f]{64}$"
    for account, count in ((usd[0], 6), (usd[1], 6), (kwd[0], 2), (kwd[1], 2)):
        entries = await ledger_of(client, account, limit=2)  # checks every hash as docs/design.md says
        assert len(entries) == count
        assert len({entry["hash"] for entry in entries}) == count
        for entry in entries:
            jsonschema.validate(entry, schema)
    refunded = [e for e in await ledger_of(client, usd[0]) if e["payment_id"] == paid[1]["id"]]
    assert [e["amount"] for e in refunded] == ["-12.34", "2.34"]

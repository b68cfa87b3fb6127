"""Holds over HTTP (API.md §9): place, capture (in part), void, read and list; refusals as problem+json; events."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.helpers import API, assert_problem, case, key, open_account, transfer

pytestmark = pytest.mark.usefixtures("no_server_errors")


async def place(client: httpx.AsyncClient, source: str, destination: str, amount: object, **extra: object
                ) -> httpx.Response:
    return await client.post(f"{API}/holds", headers={"Idempotency-Key": key()}, json={
        "source_account_id": source, "destination_account_id": destination, "amount": amount, "currency": "USD",
        **extra})


async def test_place_capture_in_part_and_void(client: httpx.AsyncClient) -> None:
    a, b = await open_account(client, "10.00"), await open_account(client)
    placed = await place(client, a["id"], b["id"], "6.00", expires_in=3600, metadata={"order": "o-9"})
    assert placed.status_code == 201, placed.text
    hold = placed.json()
    assert (hold["status"], hold["amount"], hold["captured_amount"], hold["payment_id"]) == (
        "active", "6.00", "0.00", None)
    got = (await client.get(f"{API}/accounts/{a['id']}/balance")).json()
    assert (got["balance"], got["available_balance"], got["held"]) == ("10.00", "4.00", "6.00")
    assert_problem(await transfer(client, a["id"], b["id"], "4.01"), "insufficient_funds", 422)

    same = key()
    captured = await client.post(f"{API}/holds/{hold['id']}/capture", json={"amount": "2.50"},
                                 headers={"Idempotency-Key": same})
    assert captured.status_code == 200, captured.text
    body = captured.json()
    assert (body["status"], body["captured_amount"]) == ("captured", "2.50") and body["payment_id"]
    again = await client.post(f"{API}/holds/{hold['id']}/capture", json={"amount": "2.50"},
                              headers={"Idempotency-Key": same})
    assert again.headers.get("idempotent-replayed") == "true" and again.content == captured.content
    payment = (await client.get(f"{API}/payments/{body['payment_id']}")).json()
    assert (payment["status"], payment["amount"], payment["payment_type"]) == ("completed", "2.50",
                                                                                "internal_transfer")
    got = (await client.get(f"{API}/accounts/{a['id']}/balance")).json()
    assert (got["balance"], got["available_balance"], got["held"]) == ("7.50", "7.50", "0.00")
    assert_problem(await client.post(f"{API}/holds/{hold['id']}/void"), "invalid_state_transition", 409)

    second = (await place(client, a["id"], b["id"], "1.00")).json()
    voided = await client.post(f"{API}/holds/{second['id']}/void")
    assert (voided.status_code, voided.json()["status"]) == (200, "voided")
    listed = (await client.get(f"{API}/holds", params={"account_id": b["id"]})).json()
    assert [h["id"] for h in listed["data"]] == [second["id"], hold["id"]] and listed["has_more"] is False
    assert [h["id"] for h in (await client.get(f"{API}/holds", params={"status": "voided"})).json()["data"]] == [
        second["id"]]
    assert [h["id"] for h in (await client.get(f"{API}/holds", params={"metadata[order]": "o-9"})).json()[
        "data"]] == [hold["id"]]
    events = [e["type"] for e in (await client.get(f"{API}/events", params={"limit": "100"})).json()["data"]
              if e["type"].startswith("hold.")]
    assert events == ["hold.created", "hold.captured", "hold.created", "hold.voided"]


async def test_refusals(client: httpx.AsyncClient) -> None:
    a, b = await open_account(client, "1.00"), await open_account(client)
    assert_problem(await place(client, a["id"], b["id"], "1.01"), "insufficient_funds", 422)
    assert_problem(await place(client, a["id"], a["id"], "0.10"), "same_account", 422)
    for extra, field in (({"expires_in": 59}, "expires_in"), ({"expires_in": "60"}, "expires_in"),
                         ({"expires_in": 1.5}, "expires_in"), ({"description": "x" * 1001}, "description")):
        with case(extra):
            assert_problem(await place(client, a["id"], b["id"], "0.10", **extra), "validation_error", 422, field)
    assert_problem(await place(client, a["id"], b["id"], "0"), "validation_error", 422, "amount")
    no_key = await client.post(f"{API}/holds", json={"source_account_id": a["id"], "destination_account_id": b["id"],
                                                     "amount": "0.10", "currency": "USD"})
    assert_problem(no_key, "idempotency_key_missing", 400)
    hold = (await place(client, a["id"], b["id"], "0.50")).json()
    more = await client.post(f"{API}/holds/{hold['id']}/capture", json={"amount": "0.51"},
                             headers={"Idempotency-Key": key()})
    assert_problem(more, "validation_error", 422, "amount")
    assert_problem(await client.get(f"{API}/holds/01a24636-0000-7000-8000-000000000000"), "not_found", 404)
    assert_problem(await client.get(f"{API}/holds", params={"status": "gone"}), "validation_error", 422, "status")
    frozen = await client.patch(f"{API}/accounts/{b['id']}", json={"status": "frozen"})
    assert frozen.status_code == 200
    capture = await client.post(f"{API}/holds/{hold['id']}/capture", headers={"Idempotency-Key": key()})
    assert_problem(capture, "account_frozen", 409)
    assert (await client.post(f"{API}/holds/{hold['id']}/void")).json()["status"] == "voided"

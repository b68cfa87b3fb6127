"""API.md §5–6: transfers and internal-transfer payments, reading them back and folding their events."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.helpers import (
    API,
    PAYMENT_KEYS,
    TIMESTAMP,
    UUID_TEXT,
    assert_problem,
    balance,
    case,
    key,
    open_account,
    transfer,
    transfer_body,
)

pytestmark = pytest.mark.usefixtures("no_server_errors")

# Fields that differ between two otherwise identical payments.
_OWN = {"id", "created_at", "updated_at", "completed_at"}


def _check_completed_transfer(payment: dict[str, Any], source: str, destination: str, amount: str) -> None:
    assert set(payment) == PAYMENT_KEYS, set(payment) ^ PAYMENT_KEYS
    assert UUID_TEXT.match(payment["id"])
    assert (payment["payment_type"], payment["status"]) == ("internal_transfer", "completed")
    assert (payment["source_account_id"], payment["destination_account_id"]) == (source, destination)
    assert (payment["amount"], payment["currency"], payment["refunded_amount"]) == (amount, "USD", "0.00")
    assert payment["provider"] is None and payment["provider_reference"] is None and payment["failure_reason"] is None
    for field in ("created_at", "updated_at", "completed_at"):
        assert TIMESTAMP.match(payment[field]), (field, payment[field])


async def test_payment_of_type_internal_transfer_answers_like_a_transfer(client: httpx.AsyncClient) -> None:
    source, destination = await open_account(client, "100.00"), await open_account(client)
    extra: dict[str, Any] = {"description": "dinner", "metadata": {"split": "2"}}
    via_transfer = await transfer(client, source["id"], destination["id"], "12.34", **extra)
    via_payment = await client.post(
        f"{API}/payments", headers={"Idempotency-Key": key()},
        json={"payment_type": "internal_transfer", **transfer_body(source["id"], destination["id"], "12.34", **extra)})
    for label, response in (("transfer", via_transfer), ("payment", via_payment)):
        with case(label):
            assert response.status_code == 201, response.text
            assert response.headers["content-type"].startswith("application/json")
            _check_completed_transfer(response.json(), source["id"], destination["id"], "12.34")
    one, other = via_transfer.json(), via_payment.json()
    assert {k: v for k, v in one.items() if k not in _OWN} == {k: v for k, v in other.items() if k not in _OWN}
    assert one["id"] != other["id"]
    assert (await balance(client, source["id"]), await balance(client, destination["id"])) == ("75.32", "24.68")


async def test_payment_validation(client: httpx.AsyncClient) -> None:
    source, destination = await open_account(client, "10.00"), await open_account(client)
    base = {"payment_type": "internal_transfer", **transfer_body(source["id"], destination["id"], "1.00")}
    for label, body, field in (
        ("missing payment_type", {k: v for k, v in base.items() if k != "payment_type"}, "payment_type"),
        ("unknown payment_type", {**base, "payment_type": "teleport"}, "payment_type"),
        ("internal without destination", {k: v for k, v in base.items() if k != "destination_account_id"},
         "destination_account_id"),
        ("internal with provider", {**base, "provider": "stripe"}, "provider"),
        ("unknown provider", {**base, "provider": "bank"}, "provider"),
        ("zero amount", {**base, "amount": "0"}, "amount"),
    ):
        with case(label):
            response = await client.post(f"{API}/payments", json=body, headers={"Idempotency-Key": key()})
            assert_problem(response, "validation_error", 422, field)
    same = await client.post(f"{API}/payments", headers={"Idempotency-Key": key()},
                             json={**base, "destination_account_id": source["id"]})
    assert_problem(same, "same_account", 422)
    poor = await client.post(f"{API}/payments", headers={"Idempotency-Key": key()}, json={**base, "amount": "10.01"})
    assert_problem(poor, "insufficient_funds", 422)
    assert await balance(client, source["id"]) == "10.00"


async def test_get_payment_and_its_events(client: httpx.AsyncClient) -> None:
    source, destination = await open_account(client, "10.00"), await open_account(client)
    created = await transfer(client, source["id"], destination["id"], "4.00")
    payment = created.json()
    shown = await client.get(f"{API}/payments/{payment['id']}")
    assert shown.status_code == 200 and shown.json() == payment

    events = await client.get(f"{API}/payments/{payment['id']}/events")
    assert events.status_code == 200
    body = events.json()
    assert set(body) == {"data"}
    history = body["data"]
    assert [event["type"] for event in history] == ["payment.created", "payment.completed"]
    assert [event["sequence"] for event in history] == sorted(event["sequence"] for event in history)
    assert len({event["id"] for event in history}) == 2
    for event in history:
        assert event["payment_id"] == payment["id"] and TIMESTAMP.match(event["created_at"])
        assert isinstance(event["data"], dict)
    assert history[0]["data"]["status"] == "pending"
    state: dict[str, Any] = {}
    for event in history:
        state |= event["data"]
    assert state["status"] == payment["status"] == "completed"
    for field in ("status", "provider_reference", "failure_reason", "updated_at", "completed_at"):
        assert state.get(field, payment[field]) == payment[field], field


async def test_folding_the_events_gives_the_payment(client: httpx.AsyncClient) -> None:
    """Every field the events carry equals the payment's (was: refunded_amount as integer minor units, not "0.00")."""
    source, destination = await open_account(client, "10.00"), await open_account(client)
    payment = (await transfer(client, source["id"], destination["id"], "4.00")).json()
    state: dict[str, Any] = {}
    for event in (await client.get(f"{API}/payments/{payment['id']}/events")).json()["data"]:
        state |= event["data"]
    assert state, "the events carry the payment's state"
    for field in state:
        assert state[field] == payment[field], (field, state[field], payment[field])


async def test_request_id_is_the_events_correlation_id(client: httpx.AsyncClient) -> None:
    source, destination = await open_account(client, "10.00"), await open_account(client)
    response = await client.post(f"{API}/transfers", json=transfer_body(source["id"], destination["id"], "1.00"),
                                 headers={"Idempotency-Key": key(), "X-Request-ID": "trace-me.42"})
    assert response.headers["x-request-id"] == "trace-me.42"
    history = (await client.get(f"{API}/payments/{response.json()['id']}/events")).json()["data"]
    assert {event["correlation_id"] for event in history} == {"trace-me.42"}

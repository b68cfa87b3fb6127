"""API.md §6 end to end: external payments through the worker and the mock providers, every mock_outcome,
cancel, refunds, listings, and event histories that fold into the payment. The pipeline's own tests (a payment
completing, transient failures retried on a delay) also run on RabbitMQ (API.md §8), on a stack of their own."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import attrs
import httpx
import pytest

from core.clock import timestamp
from core.money import format_minor
from tests.conftest import new_api_key_for_url
from tests.e2e.conftest import Payments
from tests.e2e.helpers import API, assert_problem, key, open_account
from tests.e2e.isolated import BROKERS, Isolated, isolated_stack
from tests.e2e.payflow import balance, charges, funded, pay, refund_settled, settled
from tests.e2e.test_concurrency import _ledger_check

pytestmark = pytest.mark.usefixtures("no_server_errors", "payments_stack")

STATE = ("status", "refunded_amount", "provider_reference", "failure_reason", "updated_at", "completed_at")


@pytest.fixture(scope="module")
def rabbitmq_stack(admin_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Isolated]:
    """API, worker and mock providers on a database of their own, with RabbitMQ (a vhost of its own) as broker."""
    breaker = {"PAYMENTS_PAYMENT_BREAKER_WINDOW": "30", "PAYMENTS_PAYMENT_BREAKER_FAILURE_RATE": "1.0"}  # as below
    with isolated_stack(admin_database_url, Path(tmp_path_factory.mktemp("rabbitmq")), broker="rabbitmq",
                        worker_env=breaker) as stack:
        yield stack


@attrs.frozen
class Pipeline:
    client: httpx.AsyncClient
    mock_url: str


@pytest.fixture(params=BROKERS)
async def pipeline(
    request: pytest.FixtureRequest, payments_stack: Payments, client: httpx.AsyncClient
) -> AsyncIterator[Pipeline]:
    """A fresh tenant's client and the mock providers of the session's stack (Redis) or the RabbitMQ one."""
    if request.param == "redis":
        yield Pipeline(client, payments_stack.mock_url)
        return
    stack: Isolated = request.getfixturevalue("rabbitmq_stack")
    key = await new_api_key_for_url(stack.database_url)
    async with httpx.AsyncClient(base_url=stack.base_url, headers={"Authorization": f"Bearer {key}"},
                                 timeout=30) as rabbit_client:
        yield Pipeline(rabbit_client, stack.mock_url)


async def events_of(client: httpx.AsyncClient, payment_id: str) -> list[dict[str, Any]]:
    answer = await client.get(f"{API}/payments/{payment_id}/events")
    assert answer.status_code == 200, answer.text
    data: list[dict[str, Any]] = answer.json()["data"]
    assert [e["sequence"] for e in data] == sorted(e["sequence"] for e in data)
    return data


async def assert_folds(client: httpx.AsyncClient, payment: dict[str, Any]) -> list[str]:
    """Folding the events gives the stored payment; returns the event types in order."""
    history = await events_of(client, payment["id"])
    state: dict[str, Any] = {}
    for event in history:
        state.update({k: event["data"][k] for k in STATE if k in event["data"]})
    assert state == {k: payment[k] for k in STATE}, (state, payment)
    return [e["type"] for e in history]


@pytest.mark.parametrize("provider", ["stripe", "paypal"])
async def test_a_payment_completes_through_its_provider_and_settles(pipeline: Pipeline, provider: str) -> None:
    client = pipeline.client
    source = await funded(client, "100.00")
    created = await pay(client, source, "30.25", provider=provider, order="42")
    assert created.status_code == 202, created.text
    body = created.json()
    assert (body["status"], body["provider"], body["payment_type"]) == ("pending", provider, "external_payment")
    assert body["destination_account_id"] is None and body["completed_at"] is None
    assert await balance(client, source) == "69.75"  # held in clearing from the start
    done = await settled(client, body["id"])
    assert done["status"] == "completed" and done["provider_reference"] and done["completed_at"]
    assert await balance(client, source) == "69.75"
    assert await assert_folds(client, done) == ["payment.created", "payment.processing", "payment.completed"]
    recorded = await charges(pipeline.mock_url, body["id"])
    assert [(c["provider"], c["amount"], c["currency"], c["status"]) for c in recorded] == [
        (provider, 3025, "USD", "succeeded")]


async def test_a_decline_fails_the_payment_and_returns_the_money(client: httpx.AsyncClient) -> None:
    source = await funded(client, "50.00")
    created = (await pay(client, source, "20.00", outcome="decline")).json()
    done = await settled(client, created["id"])
    assert (done["status"], done["failure_code"]) == ("failed", "declined") and done["failure_reason"]
    assert await balance(client, source) == "50.00"
    assert await assert_folds(client, done) == ["payment.created", "payment.processing", "payment.failed"]


async def test_transient_failures_are_retried_then_succeed_with_one_charge(pipeline: Pipeline) -> None:
    """Each retry is the payment's work enqueued again with a delay: through the broker's delay queue."""
    client = pipeline.client
    source = await funded(client, "50.00")
    created = (await pay(client, source, "5.00", outcome="fail_transient:3")).json()
    done = await settled(client, created["id"])
    assert done["status"] == "completed"
    types = await assert_folds(client, done)
    assert types == ["payment.created", "payment.processing", *["payment.attempt_failed"] * 3, "payment.completed"]
    history = await events_of(client, created["id"])
    assert [e["data"]["attempt"] for e in history if e["type"] == "payment.attempt_failed"] == [1, 2, 3]
    recorded = await charges(pipeline.mock_url, created["id"])
    assert len(recorded) == 1 and recorded[0]["requests"] == 4


@pytest.mark.parametrize("outcome", ["fail_transient:9", "timeout"])
async def test_the_last_failed_attempt_fails_the_payment(client: httpx.AsyncClient, outcome: str) -> None:
    source = await funded(client, "50.00")
    created = (await pay(client, source, "7.00", outcome=outcome)).json()
    done = await settled(client, created["id"], timeout=60)
    assert done["status"] == "failed" and "gave up after" in done["failure_reason"], done
    assert done["failure_code"] == "retries_exhausted"
    assert await balance(client, source) == "50.00"
    types = await assert_folds(client, done)
    # 5 attempts; after a timeout the provider is asked before failing (an open breaker's refusals are waits)
    assert types.count("payment.attempt_failed") >= 5 and types[-1] == "payment.failed", types


async def test_a_charge_whose_every_answer_timed_out_is_found_not_failed(
    client: httpx.AsyncClient, payments_stack: Payments
) -> None:
    """The provider records the charge but answers after the client's timeout, every time: the attempts run
    out, yet before failing the payment the worker asks the provider, finds the charge, and completes it."""
    source = await funded(client, "50.00")
    created = (await pay(client, source, "6.00", mock_delay_ms="1500")).json()  # provider timeout is 1 s here
    done = await settled(client, created["id"], timeout=60)
    assert done["status"] == "completed" and done["provider_reference"], done
    types = await assert_folds(client, done)
    # four timed-out attempts, then the fifth confirms by looking the charge up (refusals are not attempts)
    assert types.count("payment.attempt_failed") >= 4 and types[-1] == "payment.completed", types
    assert len(await charges(payments_stack.mock_url, created["id"])) == 1
    assert await balance(client, source) == "44.00"


async def test_external_payment_rules(client: httpx.AsyncClient) -> None:
    source = await funded(client, "10.00")
    other = await open_account(client, "10.00", currency="EUR")
    assert_problem(await pay(client, source, "10.01"), "insufficient_funds", 422)
    assert_problem(await pay(client, source, "1.001"), "validation_error", 422, "amount")
    assert_problem(await pay(client, source, "1.00", provider="venmo"), "validation_error", 422, "provider")
    assert_problem(await pay(client, other["id"], "1.00"), "currency_mismatch", 422)
    assert_problem(await pay(client, "00000000-0000-7000-8000-000000000000", "1.00"), "not_found", 404)
    body = {"payment_type": "external_payment", "source_account_id": source, "amount": "1", "currency": "USD"}
    assert_problem(await client.post(f"{API}/payments", json=body, headers={"Idempotency-Key": key()}),
                   "validation_error", 422, "provider")
    destination = await funded(client)
    with_destination = {**body, "provider": "stripe", "destination_account_id": destination}
    assert_problem(await client.post(f"{API}/payments", json=with_destination, headers={"Idempotency-Key": key()}),
                   "validation_error", 422, "destination_account_id")
    assert await balance(client, source) == "10.00"


async def test_cancel_only_while_pending(client: httpx.AsyncClient) -> None:
    source = await funded(client, "40.00")
    slow = (await pay(client, source, "10.00", outcome="timeout")).json()
    processing = await settled(client, slow["id"], {"processing"})
    assert_problem(await client.post(f"{API}/payments/{processing['id']}/cancel"), "invalid_state_transition", 409)
    assert_problem(await client.post(f"{API}/payments/{processing['id']}/refund", json={},
                                     headers={"Idempotency-Key": key()}), "invalid_state_transition", 409)
    pending = (await pay(client, source, "1.00")).json()
    assert_problem(await client.post(f"{API}/payments/{pending['id']}/refund", json={},
                                     headers={"Idempotency-Key": key()}), "invalid_state_transition", 409)
    cancelled = (await pay(client, source, "1.00")).json()
    if (await client.post(f"{API}/payments/{cancelled['id']}/cancel")).status_code == 200:
        assert_problem(await client.post(f"{API}/payments/{cancelled['id']}/cancel"), "invalid_state_transition", 409)
        assert_problem(await client.post(f"{API}/payments/{cancelled['id']}/refund", json={},
                                         headers={"Idempotency-Key": key()}), "invalid_state_transition", 409)
    done = (await pay(client, source, "10.00")).json()
    await settled(client, done["id"])
    assert_problem(await client.post(f"{API}/payments/{done['id']}/cancel"), "invalid_state_transition", 409)
    missing = "00000000-0000-7000-8000-000000000000"
    assert_problem(await client.post(f"{API}/payments/{missing}/cancel"), "not_found", 404)


async def test_cancel_races_the_worker_and_exactly_one_wins(client: httpx.AsyncClient) -> None:
    source = await funded(client, "1000.00")
    outcomes = []
    for _ in range(50):
        created = (await pay(client, source, "1.00")).json()
        cancel = await client.post(f"{API}/payments/{created['id']}/cancel")
        final = await settled(client, created["id"])
        if cancel.status_code == 200:
            assert cancel.json()["status"] == "cancelled" and final["status"] == "cancelled"
        else:
            assert_problem(cancel, "invalid_state_transition", 409)
            assert final["status"] == "completed"
        outcomes.append(final["status"])
        types = await assert_folds(client, final)
        assert types.count("payment.cancelled") + types.count("payment.completed") == 1, types
    completed = outcomes.count("completed")
    assert await balance(client, source) == f"{1000 - completed}.00"


async def test_refunds_partial_then_full(client: httpx.AsyncClient, payments_stack: Payments) -> None:
    source = await funded(client, "100.00")
    payment = await settled(client, (await pay(client, source, "60.00")).json()["id"])
    path = f"{API}/payments/{payment['id']}/refund"
    assert_problem(await client.post(path, json={"amount": "10.00"}), "idempotency_key_missing", 400)
    reused = key()  # a malformed amount is not stored under the key: the corrected request may reuse it
    assert_problem(await client.post(path, json={"amount": "25.001"}, headers={"Idempotency-Key": reused}),
                   "validation_error", 422, "amount")
    first = await client.post(path, json={"amount": "25.00", "reason": "damaged"}, headers={"Idempotency-Key": reused})
    assert first.status_code == 202, first.text
    assert (first.json()["status"], first.json()["amount"], first.json()["reason"]) == ("pending", "25.00", "damaged")
    assert_problem(await client.post(path, json={"amount": "35.01"}, headers={"Idempotency-Key": key()}),
                   "refund_exceeds_payment", 422)  # the pending 25 counts
    assert (await refund_settled(client, payment["id"], first.json()["id"]))["status"] == "succeeded"
    partial = await settled(client, payment["id"], {"partially_refunded"})
    assert partial["refunded_amount"] == "25.00"
    assert await balance(client, source) == "65.00"
    rest = await client.post(path, json={}, headers={"Idempotency-Key": key()})
    assert rest.status_code == 202 and rest.json()["amount"] == "35.00"
    await refund_settled(client, payment["id"], rest.json()["id"])
    full = await settled(client, payment["id"], {"refunded"})
    assert full["refunded_amount"] == "60.00" and await balance(client, source) == "100.00"
    assert_problem(await client.post(path, json={"amount": "0.01"}, headers={"Idempotency-Key": key()}),
                   "invalid_state_transition", 409)
    listed = (await client.get(f"{API}/payments/{payment['id']}/refunds")).json()
    assert [r["amount"] for r in listed["data"]] == ["35.00", "25.00"] and listed["next_cursor"] is None
    types = await assert_folds(client, full)
    steps = [t for t in types if t in ("refund.created", "payment.partially_refunded", "payment.refunded")]
    assert steps == ["refund.created", "payment.partially_refunded", "refund.created", "payment.refunded"], types
    async with httpx.AsyncClient() as http:
        refunds = (await http.get(f"{payments_stack.mock_url}/_mock/refunds")).json()["data"]
    assert {r["idempotency_key"] for r in refunds} >= {first.json()["id"], rest.json()["id"]}


async def test_a_declined_refund_fails_and_moves_nothing(client: httpx.AsyncClient) -> None:
    source = await funded(client, "100.00")
    created = (await pay(client, source, "60.00", mock_refund_outcome="decline")).json()
    payment = await settled(client, created["id"])
    answer = await client.post(f"{API}/payments/{payment['id']}/refund", json={"amount": "5.00"},
                               headers={"Idempotency-Key": key()})
    refund = await refund_settled(client, payment["id"], answer.json()["id"])
    assert refund["status"] == "failed" and refund["failure_reason"]
    after = (await client.get(f"{API}/payments/{payment['id']}")).json()
    assert (after["status"], after["refunded_amount"]) == ("completed", "0.00")
    assert await balance(client, source) == "40.00"


async def test_an_internal_transfer_refunds_synchronously(client: httpx.AsyncClient) -> None:
    source, destination = await funded(client, "100.00"), await funded(client, "0.00")
    body = {"payment_type": "internal_transfer", "source_account_id": source, "destination_account_id": destination,
            "amount": "30.00", "currency": "USD"}
    payment = (await client.post(f"{API}/payments", json=body, headers={"Idempotency-Key": key()})).json()
    path = f"{API}/payments/{payment['id']}/refund"
    refund = await client.post(path, json={"amount": "10.00"}, headers={"Idempotency-Key": key()})
    assert refund.status_code == 201 and refund.json()["status"] == "succeeded", refund.text
    assert (await balance(client, source), await balance(client, destination)) == ("80.00", "20.00")
    spend = {"source_account_id": destination, "destination_account_id": source, "amount": "20.00", "currency": "USD"}
    assert (await client.post(f"{API}/transfers", json=spend, headers={"Idempotency-Key": key()})).status_code == 201
    assert_problem(await client.post(path, json={}, headers={"Idempotency-Key": key()}), "insufficient_funds", 422)
    after = (await client.get(f"{API}/payments/{payment['id']}")).json()
    assert (after["status"], after["refunded_amount"]) == ("partially_refunded", "10.00")


async def test_list_payments_filters_and_pages(client: httpx.AsyncClient) -> None:
    one, two = await funded(client, "100.00"), await funded(client, "100.00")
    made = [(await pay(client, one, "1.00", provider="stripe")).json(),
            (await pay(client, two, "2.00", provider="paypal")).json(),
            (await pay(client, one, "3.00", provider="paypal", outcome="decline")).json()]
    for payment in made:
        await settled(client, payment["id"])

    async def ids(**params: str) -> list[str]:
        answer = await client.get(f"{API}/payments", params=params)
        assert answer.status_code == 200, answer.text
        return [p["id"] for p in answer.json()["data"]]

    newest_first = [p["id"] for p in reversed(made)]
    assert (await ids(payment_type="external_payment"))[:3] == newest_first
    assert await ids(account_id=one) == [made[2]["id"], made[0]["id"]]
    assert await ids(provider="paypal") == [made[2]["id"], made[1]["id"]]
    assert await ids(status="failed") == [made[2]["id"]]
    assert await ids(account_id=one, status="completed") == [made[0]["id"]]
    assert await ids(created_after=made[1]["created_at"]) == [made[2]["id"], made[1]["id"]]
    assert await ids(created_before=made[1]["created_at"], payment_type="external_payment") == [made[0]["id"]]
    first = (await client.get(f"{API}/payments", params={"limit": "1", "account_id": one})).json()
    second = (await client.get(f"{API}/payments", params={"limit": "1", "account_id": one,
                                                          "cursor": first["next_cursor"]})).json()
    assert [p["id"] for p in first["data"] + second["data"]] == [made[2]["id"], made[0]["id"]]
    for bad in ({"status": "done"}, {"provider": "venmo"}, {"account_id": "nope"}, {"created_after": "yesterday"},
                {"created_after": "0001-01-01T00:00:00+01:00"}, {"created_before": "9999-12-31T23:59:59-01:00"},
                {"payment_type": "x"}, {"cursor": "zzz"}, {"limit": "0"}, {"colour": "red"}):
        assert_problem(await client.get(f"{API}/payments", params=bad), "validation_error", 422, *bad)


async def test_many_mixed_payments_conserve_money(
    client: httpx.AsyncClient, payments_stack: Payments, database_url: str
) -> None:
    accounts = [await funded(client, "1000.00") for _ in range(5)]
    outcomes = ["succeed", "decline", "fail_transient:1", "succeed"]
    created = await asyncio.gather(*[
        pay(client, accounts[n % 5], f"{1 + n % 7}.00", provider=("stripe", "paypal")[n % 2],
            outcome=outcomes[n % 4]) for n in range(200)])
    assert all(c.status_code == 202 for c in created), [c.text for c in created if c.status_code != 202][:3]
    finals = [await settled(client, c.json()["id"], timeout=90) for c in created]
    spent = sum(int(p["amount"].split(".")[0]) for p in finals if p["status"] == "completed")
    assert {p["status"] for p in finals} == {"completed", "failed"}
    total = sum([int((await balance(client, a)).split(".")[0]) for a in accounts])
    assert total == 5000 - spent
    result = await asyncio.to_thread(_ledger_check, database_url)
    assert result.returncode == 0 and "ledger ok" in result.stdout, result.stdout + result.stderr


async def test_every_payment_in_the_database_folds_from_its_events(database_url: str) -> None:
    """After everything above (and whatever ran before): each stored payment equals the fold of its events."""
    connection = await asyncpg.connect(database_url)
    try:
        payments = await connection.fetch(
            "SELECT id, status, refunded_amount, currency, provider_reference, failure_reason, updated_at,"
            " completed_at FROM payments")
        events = await connection.fetch("SELECT payment_id, sequence, type, data FROM payment_events"
                                        " ORDER BY payment_id, sequence")
    finally:
        await connection.close()
    history: dict[Any, list[Any]] = {}
    for event in events:
        history.setdefault(event["payment_id"], []).append(event)
    assert len(payments) > 100
    for payment in payments:
        state: dict[str, Any] = {}
        for event in history[payment["id"]]:
            data = json.loads(event["data"]) if isinstance(event["data"], str) else event["data"]
            state.update({k: data[k] for k in STATE if k in data})
        stored = {"status": payment["status"], "provider_reference": payment["provider_reference"],
                  "failure_reason": payment["failure_reason"],
                  "refunded_amount": format_minor(payment["refunded_amount"], payment["currency"]),
                  "updated_at": timestamp(payment["updated_at"]), "completed_at": timestamp(payment["completed_at"])}
        assert state == stored, (payment["id"], state, stored)
        assert [e["sequence"] for e in history[payment["id"]]] == list(range(len(history[payment["id"]])))

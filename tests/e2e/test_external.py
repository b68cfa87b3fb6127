"""API.md §6 end to end: external payments through the worker and the mock providers, every mock_outcome,
cancel, refunds, listings, and event histories that fold into the payment. Driven through `payments.client`."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import httpx
import pytest

from core.clock import timestamp
from core.money import format_minor
from payments.client import AsyncClient, InvalidStateTransition
from tests.e2e.apiflow import STATE, balance, fails, folds, funded, pay, refund_settled, settled
from tests.e2e.conftest import Payments
from tests.e2e.payflow import charges
from tests.e2e.test_concurrency import _ledger_check

pytestmark = pytest.mark.usefixtures("no_server_errors", "payments_stack")

MISSING = "00000000-0000-7000-8000-000000000000"


@pytest.mark.parametrize("provider", ["stripe", "paypal"])
async def test_a_payment_completes_through_its_provider_and_settles(
    api: AsyncClient, payments_stack: Payments, provider: str
) -> None:
    source = await funded(api, "100.00")
    created = await pay(api, source, "30.25", provider=provider, order="42")
    assert (created.status, created.provider, created.payment_type) == ("pending", provider, "external_payment")
    assert created.destination_account_id is None and created.completed_at is None
    assert created.metadata == {"order": "42"}
    assert await balance(api, source) == "69.75"  # held in clearing from the start
    done = await settled(api, created.id)
    assert done.status == "completed" and done.provider_reference and done.completed_at
    assert await balance(api, source) == "69.75"
    assert await folds(api, done) == ["payment.created", "payment.processing", "payment.completed"]
    recorded = await charges(payments_stack.mock_url, created.id)
    assert [(c["provider"], c["amount"], c["currency"], c["status"]) for c in recorded] == [
        (provider, 3025, "USD", "succeeded")]


async def test_a_decline_fails_the_payment_and_returns_the_money(api: AsyncClient) -> None:
    source = await funded(api, "50.00")
    done = await settled(api, (await pay(api, source, "20.00", outcome="decline")).id)
    assert (done.status, done.failure_code) == ("failed", "declined") and done.failure_reason
    assert await balance(api, source) == "50.00"
    assert await folds(api, done) == ["payment.created", "payment.processing", "payment.failed"]


async def test_transient_failures_are_retried_then_succeed_with_one_charge(
    api: AsyncClient, payments_stack: Payments
) -> None:
    source = await funded(api, "50.00")
    created = await pay(api, source, "5.00", outcome="fail_transient:3")
    done = await settled(api, created.id)
    assert done.status == "completed"
    types = await folds(api, done)
    assert types == ["payment.created", "payment.processing", *["payment.attempt_failed"] * 3, "payment.completed"]
    history = await api.payments.events(created.id)
    assert [e.data["attempt"] for e in history if e.type == "payment.attempt_failed"] == [1, 2, 3]
    recorded = await charges(payments_stack.mock_url, created.id)
    assert len(recorded) == 1 and recorded[0]["requests"] == 4


@pytest.mark.parametrize("outcome", ["fail_transient:9", "timeout"])
async def test_the_last_failed_attempt_fails_the_payment(api: AsyncClient, outcome: str) -> None:
    source = await funded(api, "50.00")
    done = await settled(api, (await pay(api, source, "7.00", outcome=outcome)).id, timeout=60)
    assert done.status == "failed" and "gave up after" in (done.failure_reason or ""), done
    assert done.failure_code == "retries_exhausted"
    assert await balance(api, source) == "50.00"
    types = await folds(api, done)
    # 5 attempts; after a timeout the provider is asked before failing (an open breaker's refusals are waits)
    assert types.count("payment.attempt_failed") >= 5 and types[-1] == "payment.failed", types


async def test_a_charge_whose_every_answer_timed_out_is_found_not_failed(
    api: AsyncClient, payments_stack: Payments
) -> None:
    """The provider records the charge but answers after the client's timeout, every time: the attempts run
    out, yet before failing the payment the worker asks the provider, finds the charge, and completes it."""
    source = await funded(api, "50.00")
    created = await pay(api, source, "6.00", mock_delay_ms="1500")  # provider timeout is 1 s here
    done = await settled(api, created.id, timeout=60)
    assert done.status == "completed" and done.provider_reference, done
    types = await folds(api, done)
    # four timed-out attempts, then the fifth confirms by looking the charge up (refusals are not attempts)
    assert types.count("payment.attempt_failed") >= 4 and types[-1] == "payment.completed", types
    assert len(await charges(payments_stack.mock_url, created.id)) == 1
    assert await balance(api, source) == "44.00"


async def test_external_payment_rules(api: AsyncClient) -> None:
    source = await funded(api, "10.00")
    other = await funded(api, "10.00", currency="EUR")
    await fails(pay(api, source, "10.01"), "insufficient_funds", 422)
    await fails(pay(api, source, "1.001"), "validation_error", 422, "amount")
    await fails(pay(api, source, "1.00", provider="venmo"), "validation_error", 422, "provider")
    await fails(pay(api, other, "1.00"), "currency_mismatch", 422)
    await fails(pay(api, MISSING, "1.00"), "not_found", 404)
    await fails(pay(api, source, "1", provider=None), "validation_error", 422, "provider")
    destination = await funded(api)
    await fails(api.payments.create(payment_type="external_payment", source_account_id=source, amount="1",
                                    currency="USD", provider="stripe", destination_account_id=destination),
                "validation_error", 422, "destination_account_id")
    assert await balance(api, source) == "10.00"


async def test_cancel_only_while_pending(api: AsyncClient) -> None:
    source = await funded(api, "40.00")
    slow = await pay(api, source, "10.00", outcome="timeout")
    processing = await settled(api, slow.id, {"processing"})
    await fails(api.payments.cancel(processing.id), "invalid_state_transition", 409)
    await fails(api.refunds.create(processing.id), "invalid_state_transition", 409)
    pending = await pay(api, source, "1.00")
    await fails(api.refunds.create(pending.id), "invalid_state_transition", 409)
    cancelled = await pay(api, source, "1.00")
    try:
        await api.payments.cancel(cancelled.id)
    except InvalidStateTransition:  # the worker took it first
        pass
    else:
        await fails(api.payments.cancel(cancelled.id), "invalid_state_transition", 409)
        await fails(api.refunds.create(cancelled.id), "invalid_state_transition", 409)
    done = await pay(api, source, "10.00")
    await settled(api, done.id)
    await fails(api.payments.cancel(done.id), "invalid_state_transition", 409)
    await fails(api.payments.cancel(MISSING), "not_found", 404)


async def test_cancel_races_the_worker_and_exactly_one_wins(api: AsyncClient) -> None:
    source = await funded(api, "1000.00")
    outcomes = []
    for _ in range(50):
        created = await pay(api, source, "1.00")
        try:
            cancel = await api.payments.cancel(created.id)
        except InvalidStateTransition:
            cancel = None
        final = await settled(api, created.id)
        if cancel is not None:
            assert cancel.status == "cancelled" and final.status == "cancelled"
        else:
            assert final.status == "completed"
        outcomes.append(final.status)
        types = await folds(api, final)
        assert types.count("payment.cancelled") + types.count("payment.completed") == 1, types
    completed = outcomes.count("completed")
    assert await balance(api, source) == f"{1000 - completed}.00"


async def test_refunds_partial_then_full(
    api: AsyncClient, client: httpx.AsyncClient, payments_stack: Payments
) -> None:
    source = await funded(api, "100.00")
    payment = await settled(api, (await pay(api, source, "60.00")).id)
    # the client always sends a key; the raw request shows the server insisting on one
    missing_key = await client.post(f"/api/v1/payments/{payment.id}/refund", json={"amount": "10.00"})
    assert (missing_key.status_code, missing_key.json()["type"]) == (400, "/problems/idempotency_key_missing")
    # a malformed amount is not stored under the key: the corrected request may reuse it
    reused = f"refund-{payment.id}"
    await fails(api.refunds.create(payment.id, amount="25.001", idempotency_key=reused),
                "validation_error", 422, "amount")
    first = await api.refunds.create(payment.id, amount="25.00", reason="damaged", idempotency_key=reused)
    assert (first.status, first.amount, first.reason) == ("pending", "25.00", "damaged")
    await fails(api.refunds.create(payment.id, amount="35.01"), "refund_exceeds_payment", 422)  # the pending 25 counts
    assert (await refund_settled(api, payment.id, first.id)).status == "succeeded"
    partial = await settled(api, payment.id, {"partially_refunded"})
    assert partial.refunded_amount == "25.00"
    assert await balance(api, source) == "65.00"
    rest = await api.refunds.create(payment.id)
    assert (rest.status, rest.amount) == ("pending", "35.00")
    await refund_settled(api, payment.id, rest.id)
    full = await settled(api, payment.id, {"refunded"})
    assert full.refunded_amount == "60.00" and await balance(api, source) == "100.00"
    await fails(api.refunds.create(payment.id, amount="0.01"), "invalid_state_transition", 409)
    listed = await api.refunds.list(payment.id)
    assert [r.amount for r in listed.data] == ["35.00", "25.00"] and listed.next_cursor is None
    types = await folds(api, full)
    steps = [t for t in types if t in ("refund.created", "payment.partially_refunded", "payment.refunded")]
    assert steps == ["refund.created", "payment.partially_refunded", "refund.created", "payment.refunded"], types
    async with httpx.AsyncClient() as http:
        refunds = (await http.get(f"{payments_stack.mock_url}/_mock/refunds")).json()["data"]
    assert {r["idempotency_key"] for r in refunds} >= {first.id, rest.id}


async def test_a_declined_refund_fails_and_moves_nothing(api: AsyncClient) -> None:
    source = await funded(api, "100.00")
    payment = await settled(api, (await pay(api, source, "60.00", mock_refund_outcome="decline")).id)
    refund = await refund_settled(api, payment.id, (await api.refunds.create(payment.id, amount="5.00")).id)
    assert refund.status == "failed" and refund.failure_reason
    after = await api.payments.get(payment.id)
    assert (after.status, after.refunded_amount) == ("completed", "0.00")
    assert await balance(api, source) == "40.00"


async def test_an_internal_transfer_refunds_synchronously(api: AsyncClient) -> None:
    source, destination = await funded(api, "100.00"), await funded(api, "0.00")
    payment = await api.payments.create(payment_type="internal_transfer", source_account_id=source,
                                        destination_account_id=destination, amount="30.00", currency="USD")
    refund = await api.refunds.create(payment.id, amount="10.00")
    assert refund.status == "succeeded"  # answered 201 at once: nothing to wait for
    assert (await balance(api, source), await balance(api, destination)) == ("80.00", "20.00")
    await api.transfers.create(source_account_id=destination, destination_account_id=source, amount="20.00",
                               currency="USD")
    await fails(api.refunds.create(payment.id), "insufficient_funds", 422)
    after = await api.payments.get(payment.id)
    assert (after.status, after.refunded_amount) == ("partially_refunded", "10.00")


async def test_list_payments_filters_and_pages(api: AsyncClient, client: httpx.AsyncClient) -> None:
    one, two = await funded(api, "100.00"), await funded(api, "100.00")
    made = [await pay(api, one, "1.00", provider="stripe"), await pay(api, two, "2.00", provider="paypal"),
            await pay(api, one, "3.00", provider="paypal", outcome="decline")]
    for payment in made:
        await settled(api, payment.id)

    async def ids(**params: str) -> list[str]:
        return [p.id for p in (await api.payments.list(**params)).data]  # type: ignore[arg-type]

    newest_first = [p.id for p in reversed(made)]
    assert (await ids(payment_type="external_payment"))[:3] == newest_first
    assert await ids(account_id=one) == [made[2].id, made[0].id]
    assert await ids(provider="paypal") == [made[2].id, made[1].id]
    assert await ids(status="failed") == [made[2].id]
    assert await ids(account_id=one, status="completed") == [made[0].id]
    assert await ids(created_after=made[1].created_at) == [made[2].id, made[1].id]
    assert await ids(created_before=made[1].created_at, payment_type="external_payment") == [made[0].id]
    first = await api.payments.list(limit=1, account_id=one)
    second = await api.payments.list(limit=1, account_id=one, cursor=first.next_cursor)
    assert [p.id for p in first.data + second.data] == [made[2].id, made[0].id]
    assert [p.id async for p in api.payments.iterate(account_id=one)] == [made[2].id, made[0].id]
    for bad in ({"status": "done"}, {"provider": "venmo"}, {"account_id": "nope"}, {"created_after": "yesterday"},
                {"created_after": "0001-01-01T00:00:00+01:00"}, {"created_before": "9999-12-31T23:59:59-01:00"},
                {"payment_type": "x"}, {"cursor": "zzz"}, {"limit": "0"}):
        await fails(api.payments.list(**bad), "validation_error", 422, *bad)  # type: ignore[arg-type]
    # a parameter the client has no argument for: the raw request shows the server refusing it
    colour = await client.get("/api/v1/payments", params={"colour": "red"})
    assert (colour.status_code, colour.json()["errors"][0]["field"]) == (422, "colour")


async def test_many_mixed_payments_conserve_money(
    api: AsyncClient, payments_stack: Payments, database_url: str
) -> None:
    accounts = [await funded(api, "1000.00") for _ in range(5)]
    outcomes = ["succeed", "decline", "fail_transient:1", "succeed"]
    created = await asyncio.gather(*[
        pay(api, accounts[n % 5], f"{1 + n % 7}.00", provider=("stripe", "paypal")[n % 2],
            outcome=outcomes[n % 4]) for n in range(200)])
    assert all(c.status == "pending" for c in created), [c for c in created if c.status != "pending"][:3]
    finals = [await settled(api, c.id, timeout=90) for c in created]
    spent = sum(int(p.amount.split(".")[0]) for p in finals if p.status == "completed")
    assert {p.status for p in finals} == {"completed", "failed"}
    total = sum([int((await balance(api, a)).split(".")[0]) for a in accounts])
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

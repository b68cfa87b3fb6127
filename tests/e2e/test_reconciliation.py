"""Reconciliation through the whole stack (API.md §12): each mismatch produced for real at the mock provider
server (a stray charge, a refund the ledger missed, an amount that differs, a charge for a failed payment) and
seen reported by `POST /reconciliations`, `payments reconcile` and the metrics; a clean day all matched; the
worker's daily run. The stack is this module's own (database, Redis, mock server, API, worker): strays at its
mock concern every tenant, so no other test's charges may land there."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import pytest

from app.bootstrap import bootstrap
from app.configuration import load_settings
from tests.conftest import ROOT, new_api_key
from tests.e2e.conftest import stack_env
from tests.e2e.helpers import API, assert_problem
from tests.e2e.isolated import Isolated, isolated_stack
from tests.e2e.payflow import funded, pay, refund_settled, settled

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

RECONCILIATION_KEYS = {"id", "provider", "date", "status", "summary", "items", "failure_reason", "created_at",
                       "completed_at"}
ITEM_KEYS = {"result", "type", "idempotency_key", "payment_id", "provider_reference", "ledger_amount",
             "provider_amount", "currency"}
SUMMARY_KEYS = {"matched", "missing_in_ledger", "missing_at_provider", "amount_mismatch"}


@pytest.fixture(scope="module")
def recon(admin_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Isolated]:
    # the daily run starts as soon as the UTC day has begun, so that the test sees it run
    with isolated_stack(admin_database_url, tmp_path_factory.mktemp("reconciliation"),
                        worker_env={"PAYMENTS_RECONCILE_RUN_AFTER": "0s"}) as stack:
        yield stack


@pytest.fixture
async def tenant(recon: Isolated) -> str:
    return f"recon-{secrets.token_hex(4)}"


@pytest.fixture
async def client(recon: Isolated, tenant: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a new tenant named `tenant`."""
    services = await bootstrap(load_settings({}), recon.database_url, recon.redis.url)
    try:
        key = await new_api_key(services, tenant=tenant)
    finally:
        await services.aclose()
    async with httpx.AsyncClient(base_url=recon.base_url, headers={"Authorization": f"Bearer {key}"},
                                 timeout=30) as http:
        yield http


def today() -> str:
    return datetime.now(UTC).date().isoformat()


async def reconcile(client: httpx.AsyncClient, provider: str, **headers: str) -> dict[str, Any]:
    response = await client.post(f"{API}/reconciliations", json={"provider": provider, "date": today()},
                                 headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == RECONCILIATION_KEYS and set(body["summary"]) == SUMMARY_KEYS, body
    assert all(set(item) == ITEM_KEYS for item in body["items"]), body
    again = await client.get(f"{API}/reconciliations/{body['id']}")
    assert again.status_code == 200 and again.json() == body
    return body


async def completed(client: httpx.AsyncClient, source: str, amount: str = "10.00", provider: str = "stripe",
                    **metadata: str) -> dict[str, Any]:
    created = await pay(client, source, amount, provider=provider, **metadata)
    assert created.status_code == 202, created.text
    payment = await settled(client, created.json()["id"])
    assert payment["status"] == "completed", payment
    return payment


async def at_mock(recon: Isolated, path: str, key: str, form: dict[str, str]) -> dict[str, Any]:
    """A call straight to the mock provider's Stripe-like API, behind the ledger's back."""
    async with httpx.AsyncClient() as http:
        answer = await http.post(f"{recon.mock_url}/stripe{path}", data=form,
                                 headers={"Authorization": "Bearer sk_test_mock", "Idempotency-Key": key})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def run_cli(recon: Isolated, *args: str) -> subprocess.CompletedProcess[str]:
    env = stack_env(recon.database_url, recon.redis.url, 8080, PAYMENTS_MOCK_PORT=str(recon.mock_port))
    return subprocess.run([sys.executable, "-m", "payments", "reconcile", *args], check=False, env=env, cwd=ROOT,
                          text=True, capture_output=True, timeout=60)


async def test_a_clean_day_reports_everything_matched(recon: Isolated, client: httpx.AsyncClient) -> None:
    source = await funded(client, "500.00")
    first = await completed(client, source, "12.34", provider="paypal")
    await completed(client, source, "5.00", provider="paypal")
    asked = await client.post(f"{API}/payments/{first['id']}/refund", json={"amount": "2.34"},
                              headers={"Idempotency-Key": secrets.token_hex(8)})
    assert asked.status_code == 202, asked.text
    assert (await refund_settled(client, first["id"], asked.json()["id"]))["status"] == "succeeded"
    body = await reconcile(client, "paypal")
    assert (body["status"], body["provider"], body["date"], body["items"], body["failure_reason"]) == (
        "completed", "paypal", today(), [], None)
    assert body["summary"] == {"matched": 3, "missing_in_ledger": 0, "missing_at_provider": 0, "amount_mismatch": 0}


async def test_a_stray_charge_at_the_provider_is_reported_missing_in_ledger(
        recon: Isolated, client: httpx.AsyncClient, tenant: str) -> None:
    source = await funded(client)
    paid = await completed(client, source)
    stray_key = f"stray-{secrets.token_hex(6)}"
    stray = await at_mock(recon, "/v1/payment_intents", stray_key,
                          {"amount": "4321", "currency": "usd", "confirm": "true"})
    body = await reconcile(client, "stripe")
    item = next(i for i in body["items"] if i["idempotency_key"] == stray_key)
    assert item == {"result": "missing_in_ledger", "type": "charge", "idempotency_key": stray_key,
                    "payment_id": None, "provider_reference": stray["id"], "ledger_amount": None,
                    "provider_amount": "43.21", "currency": "USD"}
    assert paid["id"] not in {i["payment_id"] for i in body["items"]}  # our own payment matched
    assert body["summary"]["matched"] == 1 and body["summary"]["missing_in_ledger"] >= 1
    # the command says so too, and fails
    cli = run_cli(recon, "--provider", "stripe", "--date", today(), "--tenant", tenant)
    assert cli.returncode == 1, cli.stderr
    assert stray_key in cli.stdout and "missing_in_ledger" in cli.stdout and "mismatches found" in cli.stderr
    # and the metrics: the latest reconciliation of this tenant has the stray
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{recon.base_url}/metrics")).text
    line = next(x for x in text.splitlines()
                if x.startswith('reconciliation_mismatches{provider="stripe",result="missing_in_ledger"}'))
    assert float(line.split()[-1]) >= 1


async def test_a_refund_the_ledger_missed_is_reported_missing_in_ledger(
        recon: Isolated, client: httpx.AsyncClient) -> None:
    source = await funded(client)
    paid = await completed(client, source, "30.00")
    refund_key = f"refund-{secrets.token_hex(6)}"
    refund = await at_mock(recon, "/v1/refunds", refund_key,
                           {"payment_intent": paid["provider_reference"], "amount": "250"})
    body = await reconcile(client, "stripe")
    item = next(i for i in body["items"] if i["idempotency_key"] == refund_key)
    assert item == {"result": "missing_in_ledger", "type": "refund", "idempotency_key": refund_key,
                    "payment_id": paid["id"], "provider_reference": refund["id"], "ledger_amount": None,
                    "provider_amount": "2.50", "currency": "USD"}


async def test_an_amount_the_provider_settled_differently_is_reported(client: httpx.AsyncClient) -> None:
    source = await funded(client)
    paid = await completed(client, source, "10.00", mock_settled_amount="999")
    body = await reconcile(client, "stripe")
    item = next(i for i in body["items"] if i["payment_id"] == paid["id"])
    assert item == {"result": "amount_mismatch", "type": "charge", "idempotency_key": paid["id"],
                    "payment_id": paid["id"], "provider_reference": paid["provider_reference"],
                    "ledger_amount": "10.00", "provider_amount": "9.99", "currency": "USD"}


async def test_a_charge_for_a_failed_payment_is_flagged_then_refunded_by_the_late_charge_path(
        recon: Isolated, client: httpx.AsyncClient) -> None:
    source = await funded(client, "100.00")
    created = await pay(client, source, "7.00", outcome="fail_transient:1000")
    failed = await settled(client, created.json()["id"])
    assert (failed["status"], failed["failure_code"]) == ("failed", "retries_exhausted")
    # the provider takes the money after all, under the payment's own key (a late charge)
    late = await at_mock(recon, "/v1/payment_intents", failed["id"],
                         {"amount": "700", "currency": "usd", "confirm": "true",
                          "metadata[payment_id]": failed["id"]})
    body = await reconcile(client, "stripe")
    item = next(i for i in body["items"] if i["payment_id"] == failed["id"])
    assert (item["result"], item["provider_reference"], item["provider_amount"]) == (
        "missing_in_ledger", late["id"], "7.00")
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        types = [e["type"] for e in (await client.get(f"{API}/payments/{failed['id']}/events")).json()["data"]]
        if "payment.late_charge_reversed" in types:
            break
        assert asyncio.get_running_loop().time() < deadline, types
        await asyncio.sleep(0.1)
    assert types.count("payment.late_charge_detected") == 1
    async with httpx.AsyncClient() as http:
        refunds = (await http.get(f"{recon.mock_url}/_mock/refunds", params={"charge_id": late["id"]})).json()["data"]
    assert [(r["amount"], r["status"]) for r in refunds] == [(700, "succeeded")]
    assert (await client.get(f"{API}/accounts/{source}/balance")).json()["balance"] == "100.00"
    # the charge and its reversal are known now: they match
    again = await reconcile(client, "stripe")
    assert failed["id"] not in {i["payment_id"] for i in again["items"]}
    assert again["summary"]["matched"] == 2


async def test_bad_requests_change_nothing_other_tenants_see_nothing_and_keys_replay(
        recon: Isolated, client: httpx.AsyncClient) -> None:
    future = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    for body, field in (({"provider": "visa", "date": today()}, "provider"),
                        ({"provider": "stripe", "date": "2026-13-01"}, "date"),
                        ({"provider": "stripe", "date": future}, "date"),
                        ({"provider": "stripe"}, "date"),
                        ({"provider": "stripe", "date": today(), "extra": 1}, "extra")):
        answer = await client.post(f"{API}/reconciliations", json=body)
        problem = assert_problem(answer, "validation_error", 422)
        assert field in {e["field"] for e in problem["errors"]}, problem
    connection = await asyncpg.connect(recon.database_url)
    try:
        assert await connection.fetchval("SELECT count(*) FROM reconciliations WHERE status <> 'completed' "
                                         "OR day > current_date") == 0
    finally:
        await connection.close()
    key = secrets.token_hex(8)
    first = await client.post(f"{API}/reconciliations", json={"provider": "paypal", "date": today()},
                              headers={"Idempotency-Key": key})
    replay = await client.post(f"{API}/reconciliations", json={"date": today(), "provider": "paypal"},
                               headers={"Idempotency-Key": key})
    assert first.status_code == replay.status_code == 201
    assert replay.content == first.content and replay.headers["idempotent-replayed"] == "true"
    reused = await client.post(f"{API}/reconciliations", json={"provider": "stripe", "date": today()},
                               headers={"Idempotency-Key": key})
    assert_problem(reused, "idempotency_key_reused", 422)
    assert_problem(await client.get(f"{API}/reconciliations/{uuid4()}"), "not_found", 404)
    other_key = await _key(recon)
    async with httpx.AsyncClient(base_url=recon.base_url, headers={"Authorization": f"Bearer {other_key}"}) as other:
        assert_problem(await other.get(f"{API}/reconciliations/{first.json()['id']}"), "not_found", 404)


async def test_a_report_that_cannot_be_read_is_stored_failed(recon: Isolated, client: httpx.AsyncClient) -> None:
    async with httpx.AsyncClient() as http:
        await http.put(f"{recon.mock_url}/_mock/config", json={"failure_rate": 1.0})
        try:
            answer = await client.post(f"{API}/reconciliations", json={"provider": "paypal", "date": today()})
        finally:
            await http.put(f"{recon.mock_url}/_mock/config", json={"failure_rate": 0.0})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["status"] == "failed" and "could not be read" in body["failure_reason"]
    assert body["summary"] == dict.fromkeys(SUMMARY_KEYS, 0) and body["completed_at"] is not None


async def test_the_worker_reconciles_yesterday_once_per_provider_for_each_tenant_settling_there(
        recon: Isolated, client: httpx.AsyncClient) -> None:
    source = await funded(client)
    await completed(client, source)  # the tenant now settles through stripe (not paypal)
    tenant_id = await _tenant_of(recon, source)
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    connection = await asyncpg.connect(recon.database_url)
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while True:
            rows = await connection.fetch("SELECT provider, status, matched FROM reconciliations "
                                          "WHERE tenant_id = $1 AND day = $2", tenant_id, yesterday)
            if rows:
                break
            assert asyncio.get_running_loop().time() < deadline, "the daily run did not reconcile yesterday"
            await asyncio.sleep(0.2)
        await asyncio.sleep(3)  # several housekeeping rounds (1 s): none reconciles it again
        rows = await connection.fetch("SELECT provider, status, matched FROM reconciliations "
                                      "WHERE tenant_id = $1 AND day = $2", tenant_id, yesterday)
    finally:
        await connection.close()
    assert [tuple(row) for row in rows] == [("stripe", "completed", 0)]


async def _tenant_of(recon: Isolated, account_id: str) -> Any:
    connection = await asyncpg.connect(recon.database_url)
    try:
        return await connection.fetchval("SELECT tenant_id FROM accounts WHERE id = $1::uuid", account_id)
    finally:
        await connection.close()


async def _key(recon: Isolated) -> str:
    services = await bootstrap(load_settings({}), recon.database_url, recon.redis.url)
    try:
        return await new_api_key(services)
    finally:
        await services.aclose()


def test_the_command_refuses_bad_arguments_with_2(recon: Isolated) -> None:
    assert run_cli(recon, "--date", "yesterday").returncode == 2
    future = (datetime.now(UTC).date() + timedelta(days=2)).isoformat()
    assert run_cli(recon, "--date", future).returncode == 2
    unknown = run_cli(recon, "--tenant", f"nobody-{os.getpid()}")
    assert unknown.returncode == 2 and "no tenant" in unknown.stderr

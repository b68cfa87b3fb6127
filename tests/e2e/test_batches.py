"""API.md §10 over HTTP: atomic and non-atomic batches, dry runs, the stored batch, idempotent replay, the limits
(1 to 1,000 transfers, references of 64 characters, bodies up to 1 MiB on this route only), and batches racing
single transfers on the same accounts: no deadlock, money conserved, `payments ledger check` clean."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from decimal import Decimal
from typing import Any

import httpx
import jsonschema
import pytest

from app.bootstrap import Services
from tests.conftest import new_api_key
from tests.e2e.helpers import API, assert_money, assert_problem, balance, key, ledger_of, open_account, transfer
from tests.e2e.test_concurrency import _ledger_check

pytestmark = pytest.mark.usefixtures("no_server_errors")
CENT = Decimal("0.01")


def leg(source: dict[str, Any], destination: dict[str, Any], amount: str, **extra: Any) -> dict[str, Any]:
    return {"source_account_id": source["id"], "destination_account_id": destination["id"], "amount": amount,
            "currency": "USD", **extra}


async def post_batch(client: httpx.AsyncClient, transfers: list[dict[str, Any]], *, idempotency_key: str | None = None,
                     **options: Any) -> httpx.Response:
    return await client.post(f"{API}/batches", json={**options, "transfers": transfers},
                             headers={"Idempotency-Key": idempotency_key or key()})


async def balances(client: httpx.AsyncClient, *accounts: dict[str, Any]) -> list[str]:
    return [await balance(client, account["id"]) for account in accounts]


def validate(client_document: dict[str, Any], name: str, instance: Any) -> None:
    schema = {**client_document["components"]["schemas"][name], "components": client_document["components"]}
    jsonschema.validate(instance, schema)


async def test_an_atomic_batch_posts_in_order_and_is_stored_as_answered(
    client: httpx.AsyncClient, services: Services, stack: Any
) -> None:
    a, b, c = [await open_account(client, amount, user_id=u) for u, amount in (("a", "100.00"), ("b", None),
                                                                              ("c", "5.00"))]
    transfers = [leg(a, b, "10.00", reference="split-1", description="rent"), leg(b, c, "4.00"),  # b spends a's
                 leg(c, a, "9.00", metadata={"fee": "yes"})]
    batch_key = key()
    response = await post_batch(client, transfers, idempotency_key=batch_key)

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["atomic"], body["dry_run"], body["status"]) == (True, False, "completed")
    assert [(r["index"], r["status"], r["reference"]) for r in body["results"]] == [
        (0, 201, "split-1"), (1, 201, None), (2, 201, None)]
    assert "balances" not in body
    assert await balances(client, a, b, c) == ["99.00", "6.00", "0.00"]
    for result, sent in zip(body["results"], transfers, strict=True):
        payment = result["payment"]
        assert (await client.get(f"{API}/payments/{payment['id']}")).json() == payment
        assert (payment["status"], payment["payment_type"], payment["amount"]) == (
            "completed", "internal_transfer", sent["amount"])
        events = (await client.get(f"{API}/payments/{payment['id']}/events")).json()["data"]
        assert [e["type"] for e in events] == ["payment.created", "payment.completed"]
    for account in (a, b, c):
        await ledger_of(client, account)  # every hash verifies
    document = (await client.get("/openapi.json")).json()
    validate(document, "Batch", body)

    stored = await client.get(f"{API}/batches/{body['id']}")
    assert stored.status_code == 200 and stored.content == response.content
    replay = await post_batch(client, transfers, idempotency_key=batch_key)
    assert (replay.status_code, replay.content, replay.headers["idempotent-replayed"]) == (
        201, response.content, "true")
    reused = await post_batch(client, transfers[:1], idempotency_key=batch_key)
    assert_problem(reused, "idempotency_key_reused", 422)
    assert await balances(client, a, b, c) == ["99.00", "6.00", "0.00"]

    other_key = await new_api_key(services)
    async with httpx.AsyncClient(base_url=stack.base_url, headers={"Authorization": f"Bearer {other_key}"}) as stranger:
        assert_problem(await stranger.get(f"{API}/batches/{body['id']}"), "not_found", 404)
    assert_problem(await client.get(f"{API}/batches/{'0' * 8}-0000-7000-8000-{'0' * 12}"), "not_found", 404)


async def test_a_failing_atomic_batch_names_each_failure_and_writes_nothing(client: httpx.AsyncClient) -> None:
    a, b = [await open_account(client, "10.00", user_id=u) for u in ("a", "b")]
    eur = await open_account(client, "10.00", currency="EUR", user_id="e")
    ghost = {"id": "0191e5a0-0000-7000-8000-0000000000ff"}
    transfers = [leg(a, b, "5.00"), leg(a, b, "6.00"), leg(a, a, "1.00"), leg(a, ghost, "1.00"), leg(b, eur, "1.00")]
    listed = (await client.get(f"{API}/payments")).json()["data"]

    response = await post_batch(client, transfers)

    body = assert_problem_batch(response)
    assert [(e["index"], e["type"], e["status"]) for e in body["errors"]] == [
        (1, "/problems/insufficient_funds", 422), (2, "/problems/same_account", 422), (3, "/problems/not_found", 404),
        (4, "/problems/currency_mismatch", 422)]
    assert await balances(client, a, b) == ["10.00", "10.00"]
    assert (await client.get(f"{API}/payments")).json()["data"] == listed

    dry = await post_batch(client, transfers, dry_run=True)  # exactly as the real run, but for the request id
    dry_body = assert_problem_batch(dry)
    assert {k: v for k, v in dry_body.items() if k != "request_id"} == {
        k: v for k, v in body.items() if k != "request_id"}


def assert_problem_batch(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert (body["type"], body["status"], body["title"]) == ("/problems/batch_failed", 422, "Batch failed")
    assert body["request_id"] == response.headers["x-request-id"]
    for error in body["errors"]:
        assert set(error) == {"index", "type", "title", "status", "detail"} and error["detail"], error
    return body


async def test_a_non_atomic_batch_makes_each_transfer_on_its_own(client: httpx.AsyncClient) -> None:
    a, b = await open_account(client, "10.00", user_id="a"), await open_account(client, user_id="b")
    transfers = [leg(b, a, "1.00"), leg(a, b, "4.00"), leg(b, a, "3.00"), leg(a, b, "100.00", reference="big")]

    response = await post_batch(client, transfers, atomic=False)

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["atomic"], body["status"]) == (False, "partially_completed")
    assert [r["status"] for r in body["results"]] == [422, 201, 201, 422]
    assert body["results"][3]["reference"] == "big"
    assert body["results"][0]["error"]["type"] == "/problems/insufficient_funds" and "payment" not in body["results"][0]
    assert await balances(client, a, b) == ["9.00", "1.00"]
    assert (await client.get(f"{API}/batches/{body['id']}")).content == response.content
    validate((await client.get("/openapi.json")).json(), "Batch", body)


async def test_a_dry_run_writes_nothing_and_shows_balances(client: httpx.AsyncClient) -> None:
    a, b = await open_account(client, "10.00", user_id="a"), await open_account(client, user_id="b")
    transfers = [leg(a, b, "4.00"), leg(b, a, "1.50")]
    before = [(await client.get(f"{API}/accounts/{x['id']}")).json() for x in (a, b)]
    dry_key = key()

    response = await post_batch(client, transfers, dry_run=True, idempotency_key=dry_key)

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["id"], body["dry_run"], body["status"]) == (None, True, "completed")
    assert body["balances"] == [{"account_id": a["id"], "balance_before": "10.00", "balance_after": "7.50"},
                                {"account_id": b["id"], "balance_before": "0.00", "balance_after": "2.50"}]
    assert all("id" not in r["payment"] and r["status"] == 201 for r in body["results"])
    assert [(await client.get(f"{API}/accounts/{x['id']}")).json() for x in (a, b)] == before
    assert (await client.get(f"{API}/payments")).json()["data"] == []
    validate((await client.get("/openapi.json")).json(), "Batch", body)

    real = await post_batch(client, transfers, idempotency_key=dry_key)  # the dry run kept no key
    assert real.status_code == 201, real.text
    assert [{k: v for k, v in r["payment"].items() if k not in ("id", "created_at", "updated_at", "completed_at")}
            for r in real.json()["results"]] == [
        {k: v for k, v in r["payment"].items() if k not in ("created_at", "updated_at", "completed_at")}
        for r in body["results"]]
    assert await balances(client, a, b) == ["7.50", "2.50"]


async def test_the_limits_of_a_batch(client: httpx.AsyncClient) -> None:
    a, b = await open_account(client, "1000.00", user_id="a"), await open_account(client, user_id="b")
    assert_problem(await post_batch(client, []), "validation_error", 422, "transfers")
    assert_problem(await post_batch(client, [leg(a, b, "0.01")] * 1_001), "validation_error", 422, "transfers")
    too_long = await post_batch(client, [leg(a, b, "0.01"), leg(a, b, "0.01", reference="r" * 65)])
    assert_problem(too_long, "validation_error", 422, "transfers[1].reference")
    bad = await post_batch(client, [leg(a, b, "0.001"), leg(a, b, "1", currency="ABC")])
    assert_problem(bad, "validation_error", 422, "transfers[0].amount", "transfers[1].currency")
    missing = await client.post(f"{API}/batches", json={"transfers": [leg(a, b, "1.00")]})
    assert_problem(missing, "idempotency_key_missing", 400)

    largest = [leg(a, b, "0.01", reference="r" * 64, description="d" * 120) for _ in range(1_000)]
    body = json.dumps({"transfers": largest}).encode()
    assert 64 * 1024 < len(body) < 1024 * 1024
    response = await client.post(f"{API}/batches", content=body,
                                 headers={"Idempotency-Key": key(), "Content-Type": "application/json"})
    assert response.status_code == 201, response.text[:500]
    assert len(response.json()["results"]) == 1_000
    assert await balances(client, a, b) == ["990.00", "10.00"]

    padded = body[:-1] + b" " * (1024 * 1024 - len(body)) + b"}"
    exact = await client.post(f"{API}/batches", content=padded, headers={"Idempotency-Key": key(),
                                                                        "Content-Type": "application/json"})
    assert exact.status_code == 201, "a body of exactly 1 MiB is allowed: " + exact.text[:300]
    over = await client.post(f"{API}/batches", content=padded[:-1] + b" }",
                             headers={"Idempotency-Key": key(), "Content-Type": "application/json"})
    assert_problem(over, "payload_too_large", 413)
    assert "1048576" in over.json()["detail"]
    single = await client.post(f"{API}/transfers", content=json.dumps(largest[0]).encode() + b" " * 65_536,
                               headers={"Idempotency-Key": key(), "Content-Type": "application/json"})
    assert_problem(single, "payload_too_large", 413)  # the other routes keep 64 KiB
    assert await balances(client, a, b) == ["980.00", "20.00"]


async def test_batches_and_single_transfers_racing_on_the_same_accounts(
    client: httpx.AsyncClient, database_url: str
) -> None:
    rng = random.Random(20261205)
    initial = [Decimal(rng.randint(0, 5_000)) * CENT for _ in range(6)]
    accounts = [await open_account(client, f"{amount:.2f}", user_id=f"r{i}") for i, amount in enumerate(initial)]

    def random_leg() -> dict[str, Any]:
        source, destination = rng.sample(accounts, 2)
        return leg(source, destination, f"{Decimal(rng.randint(1, 2_000)) * CENT:.2f}")

    batches = [post_batch(client, [random_leg() for _ in range(rng.randint(2, 40))], atomic=bool(n % 2))
               for n in range(30)]
    singles = [transfer(client, *(x["id"] for x in rng.sample(accounts, 2)), f"{rng.randint(1, 2_000) / 100:.2f}")
               for _ in range(120)]
    work = batches + singles
    rng.shuffle(work)
    responses = await asyncio.wait_for(asyncio.gather(*work), timeout=120)

    statuses = Counter(response.status_code for response in responses)
    assert set(statuses) <= {200, 201, 422}, statuses
    assert statuses[201] > 20 and statuses[200] > 0, statuses
    total = sum([assert_money(await balance(client, account["id"]), "USD") for account in accounts])
    assert total == sum(initial)
    for account in accounts:
        await ledger_of(client, account)
    result = _ledger_check(database_url)
    assert result.returncode == 0, result.stdout + result.stderr

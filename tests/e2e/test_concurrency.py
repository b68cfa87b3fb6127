"""API.md §4–5 under concurrency: no lost update, no deadlock, no overdraft, the ledger always balances."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.e2e.helpers import API, assert_money, assert_problem, balance, ledger_of, open_account, transfer

pytestmark = pytest.mark.usefixtures("no_server_errors")

ROOT = Path(__file__).resolve().parents[2]
CENT = Decimal("0.01")


async def test_random_concurrent_transfers_conserve_money(client: httpx.AsyncClient) -> None:
    rng = random.Random(20240601)
    initial = [Decimal(rng.randint(0, 6000)) * CENT for _ in range(12)]
    initial[0] = Decimal(0)  # at least one account starts empty
    accounts = [await open_account(client, f"{amount:.2f}", user_id=f"c{i}") for i, amount in enumerate(initial)]
    ids = [account["id"] for account in accounts]
    planned = []
    for _ in range(400):
        source, destination = rng.sample(range(12), 2)
        planned.append((source, destination, Decimal(rng.randint(1, 3000)) * CENT))

    responses = await asyncio.gather(*(
        transfer(client, ids[source], ids[destination], f"{amount:.2f}") for source, destination, amount in planned))

    statuses = Counter(response.status_code for response in responses)
    assert set(statuses) <= {201, 422}, statuses
    expected = dict(zip(ids, initial, strict=True))
    succeeded: dict[str, tuple[str, str, Decimal]] = {}
    for (source, destination, amount), response in zip(planned, responses, strict=True):
        if response.status_code == 422:
            assert_problem(response, "insufficient_funds", 422)
            continue
        payment = response.json()
        assert payment["status"] == "completed" and payment["amount"] == f"{amount:.2f}", payment
        assert (payment["source_account_id"], payment["destination_account_id"]) == (ids[source], ids[destination])
        succeeded[payment["id"]] = (ids[source], ids[destination], amount)
        expected[ids[source]] -= amount
        expected[ids[destination]] += amount
    assert statuses[201] > 100 and statuses[422] > 0, f"the scenario should exercise both outcomes: {statuses}"
    assert len(succeeded) == statuses[201], "two transfers share a payment id"

    # Whatever the interleaving, each balance is its initial balance plus the transfers that succeeded.
    balances = {account_id: assert_money(await balance(client, account_id), "USD") for account_id in ids}
    assert balances == expected
    assert sum(balances.values()) == sum(initial)

    # Each account's entries chain to its balance; each successful transfer is exactly one debit and one credit.
    legs: dict[str | None, list[tuple[str, Decimal]]] = {}
    for account in accounts:
        for entry in await ledger_of(client, account, limit=37):
            legs.setdefault(entry["payment_id"], []).append((entry["account_id"], Decimal(entry["amount"])))
    initial_postings = legs.pop(None, [])
    assert sorted(amount for _, amount in initial_postings) == sorted(amount for amount in initial if amount)
    assert set(legs) == set(succeeded), "ledger entries and successful transfers differ"
    for payment_id, (source_id, destination_id, amount) in succeeded.items():
        assert sorted(legs[payment_id]) == sorted([(source_id, -amount), (destination_id, amount)]), payment_id


async def test_hot_account_is_debited_exactly_as_far_as_funds_allow(client: httpx.AsyncClient) -> None:
    hot = await open_account(client, "100.00", user_id="hot")
    sinks = [await open_account(client, user_id=f"sink{i}") for i in range(4)]

    responses = await asyncio.gather(*(
        transfer(client, hot["id"], sinks[i % 4]["id"], "1.00") for i in range(240)))

    statuses = Counter(response.status_code for response in responses)
    assert statuses == {201: 100, 422: 140}, statuses
    for response in responses:
        if response.status_code == 422:
            assert_problem(response, "insufficient_funds", 422)
    assert await balance(client, hot["id"]) == "0.00"
    received = [assert_money(await balance(client, sink["id"]), "USD") for sink in sinks]
    assert sum(received) == Decimal("100.00")
    entries = await ledger_of(client, hot)
    assert len(entries) == 101 and [entry["balance_after"] for entry in entries][-1] == "0.00"
    assert {entry["amount"] for entry in entries[1:]} == {"-1.00"}
    for sink in sinks:
        await ledger_of(client, sink)


async def test_opposite_transfers_do_not_deadlock(client: httpx.AsyncClient) -> None:
    """A→B and B→A at once lock the same two rows from both ends; they must all complete (no 5xx, no timeout)."""
    a, b = await open_account(client, "50.00"), await open_account(client, "50.00")
    responses = await asyncio.gather(*(
        transfer(client, a["id"], b["id"], "1.00") if i % 2 else transfer(client, b["id"], a["id"], "1.00")
        for i in range(100)))
    assert Counter(response.status_code for response in responses) == {201: 100}
    assert (await balance(client, a["id"]), await balance(client, b["id"])) == ("50.00", "50.00")
    assert len(await ledger_of(client, a)) == len(await ledger_of(client, b)) == 101


async def test_concurrent_account_creation_and_reads(client: httpx.AsyncClient) -> None:
    created = await asyncio.gather(*(
        client.post(f"{API}/accounts", json={"user_id": "many", "currency": "USD", "initial_balance": "1.00"})
        for _ in range(60)))
    assert Counter(response.status_code for response in created) == {201: 60}
    ids = {response.json()["id"] for response in created}
    listed = (await client.get(f"{API}/accounts", params={"user_id": "many", "limit": "100"})).json()["data"]
    assert {account["id"] for account in listed} == ids and len(listed) == 60


def _ledger_check(database_url: str) -> subprocess.CompletedProcess[str]:
    """Run `payments ledger check` against the session's database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMENTS_")}
    env["PAYMENTS_DATABASE_URL"] = database_url
    return subprocess.run([sys.executable, "-m", "payments", "ledger", "check"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


def test_ledger_check_passes_after_the_concurrency_tests(database_url: str) -> None:
    """`payments ledger check` audits the whole database (every tenant of this session) and exits 0."""
    result = _ledger_check(database_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ledger ok" in result.stdout


async def test_ledger_check_detects_drift(database_url: str, client: httpx.AsyncClient) -> None:
    """The check above can fail: with one balance drifted from its entries it exits 1 naming the account.

    The drift must be committed for the command to see it, so it is undone right after.
    """
    import asyncpg

    account = await open_account(client, "5.00")
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute("UPDATE accounts SET balance = balance + 1 WHERE id = $1", account["id"])
        result = await asyncio.to_thread(_ledger_check, database_url)
    finally:
        await connection.execute("UPDATE accounts SET balance = balance - 1 WHERE id = $1", account["id"])
        await connection.close()
    assert result.returncode == 1, result.stdout + result.stderr
    assert account["id"] in result.stdout

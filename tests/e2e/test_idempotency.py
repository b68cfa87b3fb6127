"""API.md §1 Idempotency over HTTP: replays are byte-for-byte, money moves once, in-flight keys answer 409."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

import asyncpg
import httpx
import pytest

from tests.e2e.helpers import (
    API,
    assert_problem,
    balance,
    key,
    ledger_of,
    open_account,
    transfer,
    transfer_body,
)

pytestmark = pytest.mark.usefixtures("no_server_errors")


async def test_replay_is_byte_for_byte_and_moves_money_once(client: httpx.AsyncClient) -> None:
    source, destination = await open_account(client, "100.00"), await open_account(client)
    used = key()
    first = await transfer(client, source["id"], destination["id"], "30.00", idempotency_key=used)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    for _ in range(3):
        again = await transfer(client, source["id"], destination["id"], "30.00", idempotency_key=used)
        assert again.status_code == 201
        assert again.content == first.content
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.headers["content-type"] == first.headers["content-type"]
    assert (await balance(client, source["id"]), await balance(client, destination["id"])) == ("70.00", "30.00")
    assert len(await ledger_of(client, source)) == 2


async def test_a_stored_business_error_is_replayed_even_when_it_would_now_succeed(client: httpx.AsyncClient) -> None:
    source, destination, donor = await open_account(client, "5.00"), await open_account(client), \
        await open_account(client, "100.00")
    used = key()
    refused = await transfer(client, source["id"], destination["id"], "10.00", idempotency_key=used)
    assert_problem(refused, "insufficient_funds", 422)
    assert (await transfer(client, donor["id"], source["id"], "50.00")).status_code == 201  # now it could succeed
    replayed = await transfer(client, source["id"], destination["id"], "10.00", idempotency_key=used)
    assert replayed.status_code == 422
    assert replayed.content == refused.content
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.headers["content-type"].startswith("application/problem+json")
    assert (await balance(client, source["id"]), await balance(client, destination["id"])) == ("55.00", "0.00")


async def test_same_json_with_other_key_order_and_spacing_is_the_same_request(client: httpx.AsyncClient) -> None:
    source, destination = await open_account(client, "10.00"), await open_account(client)
    used = key()
    body = transfer_body(source["id"], destination["id"], "1.00", description="rent", metadata={"a": "1", "b": "2"})
    compact = json.dumps(body, separators=(",", ":")).encode()
    reordered = json.dumps(dict(reversed(list(body.items()))) | {"metadata": {"b": "2", "a": "1"}}, indent=4).encode()
    assert compact != reordered
    first = await client.post(f"{API}/transfers", content=compact,
                              headers={"Idempotency-Key": used, "Content-Type": "application/json"})
    assert first.status_code == 201, first.text
    again = await client.post(f"{API}/transfers", content=b"\n  " + reordered + b"\n",
                              headers={"Idempotency-Key": used, "Content-Type": "application/json"})
    assert again.status_code == 201 and again.content == first.content, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await balance(client, source["id"]) == "9.00"


async def test_optional_key_on_account_creation(client: httpx.AsyncClient) -> None:
    used = key()
    body = {"user_id": "idem", "currency": "USD", "initial_balance": "12.00"}
    first = await client.post(f"{API}/accounts", json=body, headers={"Idempotency-Key": used})
    again = await client.post(f"{API}/accounts", json=body, headers={"Idempotency-Key": used})
    assert first.status_code == again.status_code == 201
    assert again.content == first.content and again.headers["Idempotent-Replayed"] == "true"
    other = await client.post(f"{API}/accounts", json={**body, "initial_balance": "13.00"},
                              headers={"Idempotency-Key": used})
    assert_problem(other, "idempotency_key_reused", 422)
    unkeyed = [await client.post(f"{API}/accounts", json=body) for _ in range(2)]
    assert [response.status_code for response in unkeyed] == [201, 201]
    listed = (await client.get(f"{API}/accounts", params={"user_id": "idem"})).json()["data"]
    assert len(listed) == 3, "a keyed create ran twice, or an unkeyed one was deduplicated"


async def test_sixteen_concurrent_requests_with_one_key_move_money_once(client: httpx.AsyncClient) -> None:
    source, destination = await open_account(client, "100.00"), await open_account(client)
    used = key()
    responses = await asyncio.gather(*(
        transfer(client, source["id"], destination["id"], "25.00", idempotency_key=used) for _ in range(16)))
    statuses = Counter(response.status_code for response in responses)
    assert set(statuses) <= {201, 409}, statuses
    created = [response for response in responses if response.status_code == 201]
    originals = [response for response in created if "idempotent-replayed" not in response.headers]
    assert len(originals) == 1, f"{len(originals)} requests ran the transfer"
    for response in created:
        assert response.content == originals[0].content
        if response is not originals[0]:
            assert response.headers["Idempotent-Replayed"] == "true"
    for response in responses:
        if response.status_code == 409:
            assert_problem(response, "idempotency_request_in_progress", 409)
    later = await transfer(client, source["id"], destination["id"], "25.00", idempotency_key=used)
    assert later.status_code == 201 and later.content == originals[0].content
    assert (await balance(client, source["id"]), await balance(client, destination["id"])) == ("75.00", "25.00")
    assert [entry["amount"] for entry in await ledger_of(client, source)] == ["100.00", "-25.00"]


async def _wait_for_a_lock_wait(connection: asyncpg.Connection, timeout: float = 20) -> None:
    """Until some backend of this database waits for a lock (the request blocked on our row lock)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")
        if waiting:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the first request never blocked on the account's row lock")


async def test_a_key_in_flight_answers_409_then_replays(client: httpx.AsyncClient, database_url: str) -> None:
    """Hold the source account's row lock so the first request stays in flight; the same key meanwhile is a 409."""
    source, destination = await open_account(client, "10.00"), await open_account(client)
    used = key()
    connection = await asyncpg.connect(database_url)
    try:
        holder = connection.transaction()
        await holder.start()
        await connection.execute("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE", source["id"])
        first = asyncio.create_task(transfer(client, source["id"], destination["id"], "4.00", idempotency_key=used))
        await _wait_for_a_lock_wait(connection)
        second = await transfer(client, source["id"], destination["id"], "4.00", idempotency_key=used)
        assert_problem(second, "idempotency_request_in_progress", 409)
        different = await transfer(client, source["id"], destination["id"], "5.00", idempotency_key=used)
        assert different.status_code in (409, 422), different.text  # in flight, or already known to differ
        await holder.rollback()
        original = await first
    finally:
        await connection.close()
    assert original.status_code == 201, original.text
    replay = await transfer(client, source["id"], destination["id"], "4.00", idempotency_key=used)
    assert replay.status_code == 201 and replay.content == original.content
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert await balance(client, source["id"]) == "6.00"


async def test_payments_endpoint_is_idempotent_too(client: httpx.AsyncClient) -> None:
    source, destination = await open_account(client, "10.00"), await open_account(client)
    used = key()
    body = {"payment_type": "internal_transfer", **transfer_body(source["id"], destination["id"], "2.50")}
    first = await client.post(f"{API}/payments", json=body, headers={"Idempotency-Key": used})
    again = await client.post(f"{API}/payments", json=body, headers={"Idempotency-Key": used})
    assert first.status_code == again.status_code == 201, first.text
    assert again.content == first.content and again.headers["Idempotent-Replayed"] == "true"
    assert await balance(client, source["id"]) == "7.50"

"""Holds over HTTP (API.md §9): place, capture (in part), void, read and list, through `payments.client`;
refusals as raw problem+json; events; expiry recorded by a real worker's sweep."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

from payments.client import AsyncClient
from tests.e2e.apiflow import fails, funded
from tests.e2e.conftest import Payments
from tests.e2e.helpers import API, assert_problem, case, key, open_account
from tests.receiver import Receiver

pytestmark = pytest.mark.usefixtures("no_server_errors")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


async def place(client: httpx.AsyncClient, source: str, destination: str, amount: object, **extra: object
                ) -> httpx.Response:
    return await client.post(f"{API}/holds", headers={"Idempotency-Key": key()}, json={
        "source_account_id": source, "destination_account_id": destination, "amount": amount, "currency": "USD",
        **extra})


async def test_place_capture_in_part_and_void(api: AsyncClient) -> None:
    a, b = await funded(api, "10.00"), await funded(api, "0.00")
    hold = await api.holds.create(source_account_id=a, destination_account_id=b, amount="6.00", currency="USD",
                                  expires_in=3600, metadata={"order": "o-9"})
    assert (hold.status, hold.amount, hold.captured_amount, hold.payment_id) == ("active", "6.00", "0.00", None)
    got = await api.accounts.balance(a)
    assert (got.balance, got.available_balance, got.held) == ("10.00", "4.00", "6.00")
    await fails(api.transfers.create(source_account_id=a, destination_account_id=b, amount="4.01", currency="USD"),
                "insufficient_funds", 422)

    same = f"capture-{hold.id}"
    captured = await api.holds.capture(hold.id, amount="2.50", idempotency_key=same)
    assert (captured.status, captured.captured_amount) == ("captured", "2.50") and captured.payment_id
    again = await api.holds.capture(hold.id, amount="2.50", idempotency_key=same)
    assert again == captured  # the first answer replayed (a second capture would be invalid_state_transition)
    payment = await api.payments.get(captured.payment_id)
    assert (payment.status, payment.amount, payment.payment_type) == ("completed", "2.50", "internal_transfer")
    got = await api.accounts.balance(a)
    assert (got.balance, got.available_balance, got.held) == ("7.50", "7.50", "0.00")
    await fails(api.holds.void(hold.id), "invalid_state_transition", 409)

    second = await api.holds.create(source_account_id=a, destination_account_id=b, amount="1.00", currency="USD")
    assert (await api.holds.void(second.id)).status == "voided"
    listed = await api.holds.list(account_id=b)
    assert [h.id for h in listed.data] == [second.id, hold.id] and listed.has_more is False
    assert [h.id async for h in api.holds.iterate(status="voided")] == [second.id]
    assert [h.id async for h in api.holds.iterate(metadata={"order": "o-9"})] == [hold.id]
    events = [e.type async for e in api.events.iterate() if e.type.startswith("hold.")]
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


async def test_the_workers_sweep_expires_a_due_hold_with_no_request_touching_its_account(
    api: AsyncClient, payments_stack: Payments, receiver: Receiver
) -> None:
    """A real worker process (its sweep every 200 ms, FAST_WORKER) records expired a hold past its expiry: the hold
    row, the account's `held`, the `hold.expired` event in the feed and as a webhook; the ledger stays clean.
    Time passes by moving the hold's `expires_at` into the past in PostgreSQL (`expires_in` is at least 60 s)."""
    pool = payments_stack.services.pool
    await api.webhooks.create(url=receiver.url("/holds"), events=["hold.expired"])
    a, b = await funded(api, "10.00"), await funded(api, "0.00")
    hold_id = (await api.holds.create(source_account_id=a, destination_account_id=b, amount="4.00", currency="USD",
                                      expires_in=60)).id

    async def stored() -> tuple[str, int]:
        row = await pool.fetchrow("SELECT h.status, a.held FROM holds h JOIN accounts a ON a.id = h.source_account_id"
                                  " WHERE h.id = $1", uuid.UUID(hold_id))
        assert row is not None
        return row["status"], row["held"]

    assert await stored() == ("active", 400)
    moved = await pool.execute("UPDATE holds SET expires_at = now() - interval '1 second' WHERE id = $1",
                               uuid.UUID(hold_id))
    assert moved == "UPDATE 1"

    deadline = asyncio.get_running_loop().time() + 30  # a bound for a loaded machine, not a measure
    while (now := await stored()) != ("expired", 0):
        assert asyncio.get_running_loop().time() < deadline, f"the sweep has not expired the hold: {now}"
        await asyncio.sleep(0.1)

    assert (await api.holds.get(hold_id)).status == "expired"
    got = await api.accounts.balance(a)
    assert (got.balance, got.available_balance, got.held) == ("10.00", "10.00", "0.00")
    while not (events := (await api.events.list(type="hold.expired")).data):
        assert asyncio.get_running_loop().time() < deadline, "no hold.expired event in the feed"
        await asyncio.sleep(0.1)
    assert [(e.type, e.data.object["id"], e.data.object["status"]) for e in events] == [
        ("hold.expired", hold_id, "expired")]
    delivered = await asyncio.to_thread(receiver.wait, "/holds", 1, 30.0)
    assert [json.loads(hit.body)["id"] for hit in delivered] == [events[0].id]
    assert await payments_stack.services.audit.drift() == []

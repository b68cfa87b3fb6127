"""API.md §1 tenancy: another tenant's key sees nothing of yours, answered exactly as if it did not exist."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from app.bootstrap import Services
from tests.conftest import new_api_key
from tests.e2e.conftest import Stack
from tests.e2e.helpers import API, assert_problem, balance, case, key, open_account, transfer, transfer_body

pytestmark = pytest.mark.usefixtures("no_server_errors")


@pytest.fixture
async def intruder(stack: Stack, services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a second, unrelated tenant."""
    other = await new_api_key(services)
    async with httpx.AsyncClient(base_url=stack.base_url, headers={"Authorization": f"Bearer {other}"},
                                 timeout=30) as http:
        yield http


async def test_another_tenant_sees_nothing(client: httpx.AsyncClient, intruder: httpx.AsyncClient) -> None:
    mine, yours = await open_account(client, "50.00", user_id="alice"), await open_account(client, user_id="bob")
    paid = await transfer(client, mine["id"], yours["id"], "20.00")
    assert paid.status_code == 201
    payment_id = paid.json()["id"]

    for path in (f"accounts/{mine['id']}", f"accounts/{mine['id']}/balance", f"accounts/{mine['id']}/transactions",
                 f"payments/{payment_id}", f"payments/{payment_id}/events"):
        own = await client.get(f"{API}/{path}")
        assert own.status_code == 200, own.text
        foreign = await intruder.get(f"{API}/{path}")
        absent_account, absent_payment = str(uuid.uuid4()), str(uuid.uuid4())
        missing = await intruder.get(f"{API}/" + path.replace(mine["id"], absent_account).replace(payment_id,
                                                                                                  absent_payment))
        with case(path):
            assert_problem(foreign, "not_found", 404)
            assert_problem(missing, "not_found", 404)
            # Indistinguishable from a missing resource: same body but for the id asked about and the request id.
            masked = foreign.json() | {"request_id": None}
            masked["detail"] = masked["detail"].replace(mine["id"], absent_account).replace(payment_id, absent_payment)
            assert masked == missing.json() | {"request_id": None}

    for params in ({}, {"user_id": "alice"}, {"limit": "100"}):
        with case(params):
            listed = await intruder.get(f"{API}/accounts", params=params)
            assert listed.status_code == 200 and listed.json() == {"data": [], "has_more": False, "next_cursor": None}


async def test_transfers_touching_a_foreign_account_are_not_found(
    client: httpx.AsyncClient, intruder: httpx.AsyncClient
) -> None:
    mine = await open_account(client, "50.00")
    theirs, theirs_too = await open_account(intruder, "50.00"), await open_account(intruder)
    for label, response in (
        ("from mine, by them", await transfer(intruder, mine["id"], theirs["id"], "10.00")),
        ("to mine, by them", await transfer(intruder, theirs["id"], mine["id"], "10.00")),
        ("from theirs, by me", await transfer(client, theirs["id"], mine["id"], "10.00")),
        ("payment from mine, by them", await intruder.post(
            f"{API}/payments", headers={"Idempotency-Key": key()},
            json={"payment_type": "internal_transfer", **transfer_body(mine["id"], theirs_too["id"], "10.00")})),
    ):
        with case(label):
            assert_problem(response, "not_found", 404)
    assert await balance(client, mine["id"]) == "50.00"
    assert await balance(intruder, theirs["id"]) == "50.00"
    assert len((await client.get(f"{API}/accounts/{mine['id']}/transactions")).json()["data"]) == 1


async def test_idempotency_keys_are_scoped_to_the_tenant(
    client: httpx.AsyncClient, intruder: httpx.AsyncClient
) -> None:
    shared = key()
    mine, mine_too = await open_account(client, "10.00"), await open_account(client)
    theirs, theirs_too = await open_account(intruder, "10.00"), await open_account(intruder)
    first = await transfer(client, mine["id"], mine_too["id"], "1.00", idempotency_key=shared)
    second = await transfer(intruder, theirs["id"], theirs_too["id"], "2.00", idempotency_key=shared)
    assert first.status_code == second.status_code == 201, second.text
    assert "idempotent-replayed" not in second.headers and second.json()["id"] != first.json()["id"]
    assert (await balance(client, mine["id"]), await balance(intruder, theirs["id"])) == ("9.00", "8.00")

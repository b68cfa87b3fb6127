"""PATCH /accounts/{id} over HTTP (API.md §3): overdraft limits, frozen and closed accounts refused by every
movement with their problem types, `account.updated` in the events feed, the status filter and `has_more`."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import new_api_key
from tests.e2e.helpers import API, assert_money, assert_problem, case, key, open_account, transfer

pytestmark = pytest.mark.usefixtures("no_server_errors")


async def patch(client: httpx.AsyncClient, account_id: str, body: object, **headers: str) -> httpx.Response:
    return await client.patch(f"{API}/accounts/{account_id}", json=body, headers=headers)


async def changed(client: httpx.AsyncClient, account_id: str, **body: Any) -> dict[str, Any]:
    response = await patch(client, account_id, body)
    assert response.status_code == 200, response.text
    account: dict[str, Any] = response.json()
    return account


async def test_an_overdraft_limit_lets_the_balance_go_down_to_minus_it(client: httpx.AsyncClient) -> None:
    a, b = await open_account(client, "10.00"), await open_account(client)
    assert (a["overdraft_limit"], a["available_balance"]) == ("0.00", "10.00")
    assert_problem(await transfer(client, a["id"], b["id"], "10.01"), "insufficient_funds", 422)

    account = await changed(client, a["id"], overdraft_limit="50")
    assert (account["overdraft_limit"], account["balance"], account["available_balance"]) == ("50.00", "10.00", "10.00")
    assert account["version"] == a["version"] and account["updated_at"] > a["updated_at"]
    assert (await transfer(client, a["id"], b["id"], "55.00")).status_code == 201
    assert_problem(await transfer(client, a["id"], b["id"], "5.01"), "insufficient_funds", 422)
    assert (await transfer(client, a["id"], b["id"], 5)).status_code == 201

    got = (await client.get(f"{API}/accounts/{a['id']}/balance")).json()
    assert set(got) == {"account_id", "currency", "balance", "available_balance", "held", "version", "as_of"}
    assert (got["balance"], got["available_balance"], got["held"]) == ("-50.00", "-50.00", "0.00")
    assert got["as_of"].endswith("Z")
    assert_problem(await patch(client, a["id"], {"overdraft_limit": "49.99"}), "validation_error", 422,
                   "overdraft_limit")
    for bad in ("-1", "0.001", "1e3", True, "ten"):
        with case(bad):
            assert_problem(await patch(client, a["id"], {"overdraft_limit": bad}), "validation_error", 422,
                           "overdraft_limit")
    assert (await client.get(f"{API}/accounts/{a['id']}")).json()["overdraft_limit"] == "50.00"


async def test_a_frozen_account_is_refused_by_every_movement_until_unfrozen(client: httpx.AsyncClient) -> None:
    a, b = await open_account(client, "100.00"), await open_account(client, "100.00")
    assert (await changed(client, a["id"], status="frozen"))["status"] == "frozen"

    assert_problem(await transfer(client, a["id"], b["id"], "1.00"), "account_frozen", 409)
    assert_problem(await transfer(client, b["id"], a["id"], "1.00"), "account_frozen", 409)
    payment = await client.post(f"{API}/payments", headers={"Idempotency-Key": key()}, json={
        "payment_type": "external_payment", "source_account_id": a["id"], "amount": "1.00", "currency": "USD",
        "provider": "stripe"})
    assert_problem(payment, "account_frozen", 409)
    batch = await client.post(f"{API}/batches", headers={"Idempotency-Key": key()}, json={"transfers": [
        {"source_account_id": b["id"], "destination_account_id": a["id"], "amount": "1.00", "currency": "USD"}]})
    assert batch.status_code == 422, batch.text
    legs = [(e["index"], e["type"], e["status"]) for e in batch.json()["errors"]]
    assert legs == [(0, "/problems/account_frozen", 409)]
    for account in (a, b):
        assert (await client.get(f"{API}/accounts/{account['id']}/balance")).json()["balance"] == "100.00"

    assert (await changed(client, a["id"], status="active"))["status"] == "active"
    assert (await transfer(client, a["id"], b["id"], "1.00")).status_code == 201


async def test_closing_needs_a_zero_balance_and_then_nothing_moves_or_changes(client: httpx.AsyncClient) -> None:
    a, b = await open_account(client, "3.00"), await open_account(client)
    assert_problem(await patch(client, a["id"], {"status": "closed"}), "invalid_state_transition", 409)
    assert (await transfer(client, a["id"], b["id"], "3.00")).status_code == 201
    closed = await changed(client, a["id"], status="closed")
    assert (closed["status"], closed["balance"]) == ("closed", "0.00")

    assert_problem(await transfer(client, b["id"], a["id"], "1.00"), "account_closed", 409)
    for body in ({"status": "active"}, {"status": "frozen"}, {"status": "closed"}, {"overdraft_limit": "1"}):
        with case(body):
            assert_problem(await patch(client, a["id"], body), "account_closed", 409)
    relabelled = await changed(client, a["id"], metadata={"reason": "customer left"})
    assert (relabelled["status"], relabelled["metadata"]) == ("closed", {"reason": "customer left"})


async def test_bad_changes_are_refused_and_change_nothing(client: httpx.AsyncClient, stack: Any) -> None:
    a = await open_account(client, "1.00", metadata={"k": "v"})
    for body, fields in (
        ({"status": "deleted"}, ("status",)),
        ({"status": None}, ("status",)),
        ({"metadata": None}, ("metadata",)),
        ({"overdraft_limit": None}, ("overdraft_limit",)),
        ({"metadata": {"k": 1}}, ("metadata",)),
        ({"metadata": {f"k{i}": "v" for i in range(21)}}, ("metadata",)),
        ({"balance": "100.00"}, ()),
        ([], ()),
    ):
        with case(body):
            assert_problem(await patch(client, a["id"], body), "validation_error", 422, *fields)
    malformed = await client.patch(f"{API}/accounts/{a['id']}", content=b'{"status": "frozen", "status": "active"}',
                                   headers={"Content-Type": "application/json"})
    assert_problem(malformed, "malformed_json", 400)
    assert_problem(await patch(client, "01a24636-0000-7000-8000-000000000000", {"status": "frozen"}), "not_found", 404)
    assert_problem(await patch(client, "not-a-uuid", {"status": "frozen"}), "not_found", 404)
    async with httpx.AsyncClient(base_url=stack.base_url) as other:
        other.headers["Authorization"] = client.headers["Authorization"].replace("Bearer ", "Bearer x")
        assert_problem(await patch(other, a["id"], {"status": "frozen"}), "unauthorized", 401)
    unchanged = (await client.get(f"{API}/accounts/{a['id']}")).json()
    assert {k: unchanged[k] for k in ("status", "metadata", "overdraft_limit", "updated_at")} == {
        "status": "active", "metadata": {"k": "v"}, "overdraft_limit": "0.00", "updated_at": a["updated_at"]}


async def test_another_tenants_account_is_not_found(client: httpx.AsyncClient, stack: Any, services: Any) -> None:
    theirs = await open_account(client, "1.00")
    async with httpx.AsyncClient(base_url=stack.base_url,
                                 headers={"Authorization": f"Bearer {await new_api_key(services)}"}) as other:
        assert_problem(await patch(other, theirs["id"], {"status": "frozen"}), "not_found", 404)
    assert (await client.get(f"{API}/accounts/{theirs['id']}")).json()["status"] == "active"


async def test_a_change_with_an_idempotency_key_is_replayed(client: httpx.AsyncClient) -> None:
    a = await open_account(client)
    same = key()
    first = await patch(client, a["id"], {"metadata": {"tier": "gold"}}, **{"Idempotency-Key": same})
    again = await patch(client, a["id"], {"metadata": {"tier": "gold"}}, **{"Idempotency-Key": same})
    assert (first.status_code, again.status_code, again.headers.get("idempotent-replayed")) == (200, 200, "true")
    assert again.content == first.content
    assert_problem(await patch(client, a["id"], {"metadata": {"tier": "silver"}}, **{"Idempotency-Key": same}),
                   "idempotency_key_reused", 422)


async def test_changes_are_account_updated_events_in_the_feed(client: httpx.AsyncClient) -> None:
    a = await open_account(client, "2.00")
    await changed(client, a["id"], status="frozen")
    await changed(client, a["id"], status="frozen")  # no change: no event
    await changed(client, a["id"], status="active", overdraft_limit="1.50", metadata={"x": "y"})
    events = [e for e in (await client.get(f"{API}/events", params={"limit": "100"})).json()["data"]
              if e["data"]["object"]["id"] == a["id"]]
    assert [e["type"] for e in events] == ["account.created", "account.updated", "account.updated"]
    last = events[-1]["data"]["object"]
    assert (last["status"], last["overdraft_limit"], last["metadata"]) == ("active", "1.50", {"x": "y"})
    assert_money(last["available_balance"], "USD")


async def test_accounts_list_by_status_with_has_more(client: httpx.AsyncClient) -> None:
    ids = [(await open_account(client, user_id="st"))["id"] for _ in range(3)]
    await changed(client, ids[0], status="frozen")
    await changed(client, ids[1], status="closed")
    for status, expected in (("active", [ids[2]]), ("frozen", [ids[0]]), ("closed", [ids[1]])):
        with case(status):
            page = (await client.get(f"{API}/accounts", params={"status": status, "user_id": "st"})).json()
            assert [a["id"] for a in page["data"]] == expected
            assert (page["has_more"], page["next_cursor"]) == (False, None)
    first = (await client.get(f"{API}/accounts", params={"user_id": "st", "limit": "2"})).json()
    assert ([a["id"] for a in first["data"]], first["has_more"]) == (ids[:0:-1], True)
    rest = (await client.get(f"{API}/accounts", params={"user_id": "st", "cursor": first["next_cursor"]})).json()
    assert ([a["id"] for a in rest["data"]], rest["has_more"], rest["next_cursor"]) == ([ids[0]], False, None)
    for bad in ("", "FROZEN", "deleted"):
        with case(bad):
            assert_problem(await client.get(f"{API}/accounts", params={"status": bad}), "validation_error", 422,
                           "status")


async def test_lists_filter_on_metadata(client: httpx.AsyncClient, stack: Any) -> None:
    a = await open_account(client, "10.00", user_id="md", metadata={"tier": "gold", "region": "eu"})
    b = await open_account(client, user_id="md", metadata={"tier": "gold"})
    await open_account(client, user_id="md")
    for query, expected in (({"metadata[tier]": "gold"}, [b["id"], a["id"]]),
                            ({"metadata[tier]": "gold", "metadata[region]": "eu"}, [a["id"]]),
                            ({"metadata[region]": "us"}, [])):
        with case(query):
            page = (await client.get(f"{API}/accounts", params={"user_id": "md", **query})).json()
            assert [x["id"] for x in page["data"]] == expected and page["has_more"] is False
    sent = await transfer(client, a["id"], b["id"], "1.00", metadata={"order": "o-1"})
    await transfer(client, a["id"], b["id"], "1.00")
    listed = (await client.get(f"{API}/payments", params={"metadata[order]": "o-1"})).json()["data"]
    assert [p["id"] for p in listed] == [sent.json()["id"]]

    for params in ({"metadata[]": "x"}, {"metadata[" + "k" * 41 + "]": "x"}, {"metadata[tier]": "v" * 501},
                   [("metadata[tier]", "gold"), ("metadata[tier]", "silver")]):
        with case(params):
            for path in ("/accounts", "/payments"):
                assert_problem(await client.get(f"{API}{path}", params=params), "validation_error", 422)
    assert_problem(await client.get(f"{API}/accounts", params={"metadatas[tier]": "gold"}), "validation_error", 422,
                   "metadatas[tier]")

    document = httpx.get(f"{stack.base_url}/openapi.json").json()
    for path in ("/api/v1/accounts", "/api/v1/payments"):
        declared = {p["name"]: p for p in document["paths"][path]["get"]["parameters"]}
        assert (declared["metadata"]["style"], declared["metadata"]["explode"]) == ("deepObject", True)

"""API.md §1 Lists: limit, opaque cursors, newest first, stable while rows are inserted; §3 user_id filter."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.e2e.helpers import API, all_pages, case, ledger_of, open_account, transfer

pytestmark = pytest.mark.usefixtures("no_server_errors")


async def _open_many(client: httpx.AsyncClient, count: int, user_id: str = "user") -> list[str]:
    """`count` accounts opened one after another; their ids oldest first."""
    return [(await open_account(client, user_id=user_id))["id"] for _ in range(count)]


async def test_default_limit_and_bounds(client: httpx.AsyncClient) -> None:
    ids = await _open_many(client, 25)
    first = (await client.get(f"{API}/accounts")).json()
    assert len(first["data"]) == 20 and isinstance(first["next_cursor"], str) and first["has_more"] is True
    rest = (await client.get(f"{API}/accounts", params={"cursor": first["next_cursor"]})).json()
    assert len(rest["data"]) == 5 and rest["next_cursor"] is None and rest["has_more"] is False
    assert [a["id"] for a in first["data"] + rest["data"]] == ids[::-1], "not newest first"
    one = (await client.get(f"{API}/accounts", params={"limit": "1"})).json()
    assert [a["id"] for a in one["data"]] == [ids[-1]] and one["next_cursor"]
    everything = (await client.get(f"{API}/accounts", params={"limit": "100"})).json()
    assert [a["id"] for a in everything["data"]] == ids[::-1] and everything["next_cursor"] is None
    exact = (await client.get(f"{API}/accounts", params={"limit": "25"})).json()
    assert len(exact["data"]) == 25 and exact["next_cursor"] is None, "no cursor to an empty page"


async def test_user_id_filter(client: httpx.AsyncClient) -> None:
    alice = await _open_many(client, 3, "alice")
    bob = await _open_many(client, 2, "bob")
    alice += await _open_many(client, 2, "alice")
    for user_id, expected in (("alice", alice), ("bob", bob), ("carol", []), ("ALICE", []), ("ali", [])):
        with case(user_id):
            listed = await all_pages(client, f"{API}/accounts", limit=2, params={"user_id": user_id})
            assert [a["id"] for a in listed] == expected[::-1]
            assert all(a["user_id"] == user_id for a in listed)
    assert len(await all_pages(client, f"{API}/accounts", limit=100)) == 7


async def test_account_pages_are_stable_while_accounts_are_inserted(client: httpx.AsyncClient) -> None:
    original = await _open_many(client, 23)
    seen: list[str] = []
    cursor = None
    while True:
        page = (await client.get(f"{API}/accounts", params={"limit": "4", **({"cursor": cursor} if cursor else {})})
                ).json()
        seen += [a["id"] for a in page["data"]]
        await _open_many(client, 3)  # newer rows appear between page fetches
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)), "an account was listed twice"
    assert seen == original[::-1], "the walk lost, repeated or reordered the original accounts"
    assert len(await all_pages(client, f"{API}/accounts", limit=100)) == 23 + 3 * 6


async def test_concurrently_created_accounts_page_without_gaps(client: httpx.AsyncClient) -> None:
    created = await asyncio.gather(*(open_account(client, user_id="burst") for _ in range(40)))
    listed = await all_pages(client, f"{API}/accounts", limit=7, params={"user_id": "burst"})
    assert sorted(a["id"] for a in listed) == sorted(a["id"] for a in created)
    keys = [(a["created_at"], a["id"]) for a in listed]
    assert keys == sorted(keys, reverse=True), "not newest first"


async def test_transaction_pages_are_stable_while_entries_are_inserted(client: httpx.AsyncClient) -> None:
    account, other = await open_account(client, "100.00"), await open_account(client, "100.00")
    for i in range(11):
        assert (await transfer(client, account["id"], other["id"], f"{i + 1}.00")).status_code == 201
    original = [entry["id"] for entry in await ledger_of(client, account)][::-1]  # newest first
    assert len(original) == 12
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "5", **({"cursor": cursor} if cursor else {})}
        page = (await client.get(f"{API}/accounts/{account['id']}/transactions", params=params)).json()
        assert len(page["data"]) <= 5
        seen += [entry["id"] for entry in page["data"]]
        assert (await transfer(client, other["id"], account["id"], "0.01")).status_code == 201
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == original
    assert len(await ledger_of(client, account, limit=3)) == 12 + 3


async def test_transactions_default_limit(client: httpx.AsyncClient) -> None:
    account, other = await open_account(client, "100.00"), await open_account(client)
    for _ in range(22):
        assert (await transfer(client, account["id"], other["id"], "1.00")).status_code == 201
    page = (await client.get(f"{API}/accounts/{other['id']}/transactions")).json()
    assert len(page["data"]) == 20 and page["next_cursor"]
    assert [entry["balance_after"] for entry in page["data"]] == [f"{n}.00" for n in range(22, 2, -1)]
    last = (await client.get(f"{API}/accounts/{other['id']}/transactions", params={"cursor": page["next_cursor"]})
            ).json()
    assert [entry["balance_after"] for entry in last["data"]] == ["2.00", "1.00"] and last["next_cursor"] is None


async def test_a_cursor_does_not_leak_across_accounts(client: httpx.AsyncClient) -> None:
    """A cursor from one account's ledger, used on another, still lists only the other account's entries."""
    a, b = await open_account(client, "10.00"), await open_account(client, "10.00")
    for _ in range(3):
        assert (await transfer(client, a["id"], b["id"], "1.00")).status_code == 201
    page = (await client.get(f"{API}/accounts/{a['id']}/transactions", params={"limit": "1"})).json()
    other = await client.get(f"{API}/accounts/{b['id']}/transactions", params={"cursor": page["next_cursor"]})
    assert other.status_code in (200, 422), other.text
    if other.status_code == 200:
        assert all(entry["account_id"] == b["id"] for entry in other.json()["data"])

"""API.md §1 Money and §3 shapes: exact decimals in, minor-unit strings out, signed ledger entries."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import (
    ACCOUNT_KEYS,
    API,
    BALANCE_KEYS,
    TIMESTAMP,
    UUID_TEXT,
    assert_money,
    balance,
    case,
    key,
    ledger_of,
    open_account,
    transfer,
)

pytestmark = pytest.mark.usefixtures("no_server_errors")


async def _create_raw(client: httpx.AsyncClient, text: str) -> httpx.Response:
    return await client.post(f"{API}/accounts", content=text.encode(), headers={"Content-Type": "application/json"})


async def test_amounts_render_with_the_currency_minor_digits(client: httpx.AsyncClient) -> None:
    for currency, given, expected in (
        ("USD", "100", "100.00"), ("USD", "100.5", "100.50"), ("USD", 100, "100.00"), ("USD", "0.01", "0.01"),
        ("EUR", "7", "7.00"), ("JPY", "100", "100"), ("JPY", 100, "100"), ("KWD", "1", "1.000"),
        ("KWD", "1.5", "1.500"), ("KWD", "0.001", "0.001"), ("BHD", "2.25", "2.250"), ("CLF", "1", "1.0000"),
        ("USD", "90071992547409.91", "90071992547409.91"), ("JPY", "9007199254740991", "9007199254740991"),
        ("KWD", "9007199254740.991", "9007199254740.991"), ("USD", " 10.10 ", "10.10"), ("USD", "+3", "3.00"),
        ("USD", "007.50", "7.50"), ("USD", ".5", "0.50"),
    ):
        with case((currency, given)):
            account = await open_account(client, given, currency=currency)
            assert account["balance"] == expected
            assert (await client.get(f"{API}/accounts/{account['id']}/balance")).json()["balance"] == expected


async def test_json_numbers_are_parsed_exactly(client: httpx.AsyncClient) -> None:
    for text, expected in (
        ('{"user_id": "n", "currency": "USD", "initial_balance": 10.10}', "10.10"),
        ('{"user_id": "n", "currency": "USD", "initial_balance": 0.3}', "0.30"),
        ('{"user_id": "n", "currency": "USD", "initial_balance": 1e2}', "100.00"),
        ('{"user_id": "n", "currency": "USD", "initial_balance": 1.10E1}', "11.00"),
        ('{"user_id": "n", "currency": "KWD", "initial_balance": 1.001}', "1.001"),
        ('{"user_id": "n", "currency": "USD", "initial_balance": 90071992547409.91}', "90071992547409.91"),
        ('{"user_id": "n", "currency": "USD", "initial_balance": 9007199254740991e-2}', "90071992547409.91"),
    ):
        with case(text):
            response = await _create_raw(client, text)
            assert response.status_code == 201, response.text
            assert response.json()["balance"] == expected
    # A binary float would make 0.1 + 0.2 = 0.30000000000000004; as decimals they must add to exactly 0.30.
    noisy = await _create_raw(client, '{"user_id": "n", "currency": "USD", "initial_balance": 0.30000000000000004}')
    assert noisy.status_code == 422, "0.30000000000000004 has more than two decimal places"


async def test_point_one_plus_point_two_is_point_three(client: httpx.AsyncClient) -> None:
    source = (await _create_raw(client, '{"user_id": "s", "currency": "USD", "initial_balance": 0.3}')).json()
    destination = await open_account(client, "0")
    for amount in ("0.1", "0.2"):
        body = f'{{"source_account_id": "{source["id"]}", "destination_account_id": "{destination["id"]}", ' \
               f'"amount": {amount}, "currency": "USD"}}'
        response = await client.post(f"{API}/transfers", content=body.encode(),
                                     headers={"Content-Type": "application/json", "Idempotency-Key": key()})
        assert response.status_code == 201, response.text
        assert response.json()["amount"] == f"{amount}0"
    assert (await balance(client, source["id"]), await balance(client, destination["id"])) == ("0.00", "0.30")


async def test_string_and_number_amounts_are_equivalent(client: httpx.AsyncClient) -> None:
    source, destination = await open_account(client, "100.00"), await open_account(client)
    as_string = await transfer(client, source["id"], destination["id"], "10.10")
    as_number = await client.post(
        f"{API}/transfers", headers={"Content-Type": "application/json", "Idempotency-Key": key()},
        content=json.dumps({"source_account_id": source["id"], "destination_account_id": destination["id"],
                            "currency": "USD"})[:-1].encode() + b', "amount": 10.10}')
    assert as_string.status_code == as_number.status_code == 201, as_number.text
    assert as_string.json()["amount"] == as_number.json()["amount"] == "10.10"
    assert await balance(client, destination["id"]) == "20.20"


async def test_zero_initial_balance_is_allowed_and_posts_nothing(client: httpx.AsyncClient) -> None:
    for given in ("0", "0.00", 0, None):
        with case(given):
            account = await open_account(client, given)
            assert account["balance"] == "0.00" and account["version"] == 0
            assert (await client.get(f"{API}/accounts/{account['id']}/transactions")).json() == {
                "data": [], "has_more": False, "next_cursor": None}


async def test_account_and_balance_shapes(client: httpx.AsyncClient) -> None:
    created = await client.post(f"{API}/accounts", json={
        "user_id": "user-42", "currency": "KWD", "initial_balance": "12.5", "metadata": {"tier": "gold", "k" * 40: ""}})
    assert created.status_code == 201, created.text
    assert created.headers["content-type"].startswith("application/json")
    account: dict[str, Any] = created.json()
    assert set(account) == ACCOUNT_KEYS
    assert UUID_TEXT.match(account["id"])
    assert (account["user_id"], account["currency"], account["balance"], account["status"], account["version"]) == (
        "user-42", "KWD", "12.500", "active", 1)
    assert account["metadata"] == {"tier": "gold", "k" * 40: ""}
    assert TIMESTAMP.match(account["created_at"]) and TIMESTAMP.match(account["updated_at"])
    assert (await client.get(f"{API}/accounts/{account['id']}")).json() == account
    shown = (await client.get(f"{API}/accounts/{account['id']}/balance")).json()
    assert set(shown) == BALANCE_KEYS
    assert TIMESTAMP.match(shown.pop("as_of"))
    assert shown == {"account_id": account["id"], "currency": "KWD", "balance": "12.500", "available_balance": "12.500",
                     "held": "0.000", "version": 1}
    assert (account["available_balance"], account["overdraft_limit"]) == ("12.500", "0.000")
    full = await client.post(f"{API}/accounts", json={
        "user_id": "u" * 255, "currency": "USD", "metadata": {f"k{i}": "v" * 500 for i in range(20)}})
    assert full.status_code == 201, "20 keys, 255-char user id and 500-char values are within the limits"


async def test_ledger_entries_are_signed_and_chain(client: httpx.AsyncClient) -> None:
    source, destination = await open_account(client, "100.00"), await open_account(client, "1.00")
    first = await transfer(client, source["id"], destination["id"], "30.00", description="rent", metadata={"m": "1"})
    assert first.status_code == 201, first.text
    payment = first.json()
    assert (payment["amount"], payment["refunded_amount"], payment["currency"]) == ("30.00", "0.00", "USD")
    assert (payment["description"], payment["metadata"]) == ("rent", {"m": "1"})
    assert (await transfer(client, destination["id"], source["id"], "0.50")).status_code == 201

    debits = await ledger_of(client, source)
    assert [(e["type"], e["amount"], e["balance_after"]) for e in debits] == [
        ("credit", "100.00", "100.00"), ("debit", "-30.00", "70.00"), ("credit", "0.50", "70.50")]
    assert debits[0]["payment_id"] is None and debits[1]["payment_id"] == payment["id"]
    credits = await ledger_of(client, destination)
    assert [(e["type"], e["amount"], e["balance_after"]) for e in credits] == [
        ("credit", "1.00", "1.00"), ("credit", "30.00", "31.00"), ("debit", "-0.50", "30.50")]
    for entry in debits + credits:
        assert UUID_TEXT.match(entry["id"]) and TIMESTAMP.match(entry["created_at"]) and entry["currency"] == "USD"


async def test_jpy_and_kwd_transfers(client: httpx.AsyncClient) -> None:
    for currency, opening, amount, left, moved in (("JPY", "1000", "1", "999", "1"), ("KWD", "1", "0.001", "0.999",
                                                                                        "0.001")):
        with case(currency):
            source = await open_account(client, opening, currency=currency)
            destination = await open_account(client, currency=currency)
            response = await transfer(client, source["id"], destination["id"], amount, currency)
            assert response.status_code == 201, response.text
            assert response.json()["amount"] == moved
            assert_money(response.json()["refunded_amount"], currency)
            assert (await balance(client, source["id"]), await balance(client, destination["id"])) == (left, moved)
            entries = await ledger_of(client, source)
            assert entries[-1]["amount"] == f"-{moved}"

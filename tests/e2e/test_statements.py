"""Balances at a point in time and statements over HTTP (API.md §3): JSON and CSV, streamed page by page past
the server's page size, adding up exactly; bad periods refused."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import API, TIMESTAMP, assert_problem, case, key, open_account, transfer

pytestmark = pytest.mark.usefixtures("no_server_errors")


def stamp(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


async def now() -> str:
    await asyncio.sleep(0.01)
    when = stamp(datetime.now(UTC))
    await asyncio.sleep(0.01)
    return when


async def test_balance_at_an_instant(client: httpx.AsyncClient) -> None:
    before = await now()
    a, b = await open_account(client, "10.00"), await open_account(client)
    opened = await now()
    assert (await transfer(client, a["id"], b["id"], "2.50")).status_code == 201
    later = await now()

    for at, expected, version in ((before, "0.00", 0), (opened, "10.00", 1), (later, "7.50", 2)):
        with case(at):
            got = (await client.get(f"{API}/accounts/{a['id']}/balance", params={"at": at})).json()
            assert got == {"account_id": a["id"], "currency": "USD", "balance": expected, "version": version,
                           "as_of": got["as_of"]}
            assert TIMESTAMP.match(got["as_of"])
    for bad in ("yesterday", "2026-13-01T00:00:00Z", "2026-01-01T00:00:00", ""):
        with case(bad):
            assert_problem(await client.get(f"{API}/accounts/{a['id']}/balance", params={"at": bad}),
                           "validation_error", 422, "at")


async def test_a_statement_streams_every_entry_of_its_period_as_json_and_csv(client: httpx.AsyncClient) -> None:
    a, b = await open_account(client, "100000.00"), await open_account(client)
    assert (await transfer(client, a["id"], b["id"], "1.00")).status_code == 201  # before the period
    start = await now()
    legs = [{"source_account_id": a["id"], "destination_account_id": b["id"], "amount": "0.01", "currency": "USD"}
            for _ in range(1_000)]
    for _ in range(2):  # 2,000 debits: past the server's 1,000 entries a page
        response = await client.post(f"{API}/batches", json={"transfers": legs}, headers={"Idempotency-Key": key()})
        assert response.status_code == 201, response.text
    assert (await transfer(client, b["id"], a["id"], "5.00")).status_code == 201
    end = await now()
    assert (await transfer(client, a["id"], b["id"], "3.00")).status_code == 201  # after it
    period = {"from": start, "to": end}

    response = await client.get(f"{API}/accounts/{a['id']}/statement", params=period)
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert {k: body[k] for k in ("account_id", "currency", "opening_balance", "closing_balance", "total_credits",
                                 "total_debits")} == {
        "account_id": a["id"], "currency": "USD", "opening_balance": "99999.00", "closing_balance": "99984.00",
        "total_credits": "5.00", "total_debits": "-20.00"}
    assert (body["from"], body["to"]) == (start[:23] + "Z", end[:23] + "Z")
    entries = body["entries"]
    assert len(entries) == 2_001
    assert [e["amount"] for e in entries] == ["-0.01"] * 2_000 + ["5.00"]
    assert Decimal(body["opening_balance"]) + sum(Decimal(e["amount"]) for e in entries) == Decimal(
        body["closing_balance"]) == Decimal(entries[-1]["balance_after"])
    assert all(start <= e["created_at"] < end for e in entries)

    as_csv = await client.get(f"{API}/accounts/{a['id']}/statement", params={**period, "format": "csv"})
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in as_csv.headers["content-disposition"]
    assert as_csv.headers.get("x-request-id")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert list(rows[0]) == ["id", "created_at", "type", "amount", "balance_after", "currency", "payment_id", "hash"]
    assert [r["id"] for r in rows] == [e["id"] for e in entries]
    assert [(r["amount"], r["balance_after"], r["hash"]) for r in rows] == [
        (e["amount"], e["balance_after"], e["hash"]) for e in entries]


async def test_an_empty_period_and_bad_periods(client: httpx.AsyncClient, stack: Any, services: Any) -> None:
    from tests.conftest import new_api_key

    a = await open_account(client, "4.00")
    start = await now()
    end = await now()
    empty = (await client.get(f"{API}/accounts/{a['id']}/statement", params={"from": start, "to": end})).json()
    assert (empty["opening_balance"], empty["closing_balance"], empty["entries"]) == ("4.00", "4.00", [])
    assert (await client.get(f"{API}/accounts/{a['id']}/statement",
                             params={"from": start, "to": end, "format": "csv"})).text.count("\n") == 1

    path = f"{API}/accounts/{a['id']}/statement"
    later = stamp(datetime.now(UTC) + timedelta(hours=1))
    for params, fields in (({"to": end}, ("from",)), ({"from": start}, ("to",)), ({}, ("from", "to")),
                           ({"from": "x", "to": end}, ("from",)), ({"from": later, "to": start}, ("to",)),
                           ({"from": start, "to": start}, ("to",)),
                           ({"from": start, "to": end, "format": "pdf"}, ("format",))):
        with case(params):
            assert_problem(await client.get(path, params=params), "validation_error", 422, *fields)
    async with httpx.AsyncClient(base_url=stack.base_url,
                                 headers={"Authorization": f"Bearer {await new_api_key(services)}"}) as other:
        assert_problem(await other.get(path, params={"from": start, "to": end}), "not_found", 404)
        assert_problem(await other.get(f"{API}/accounts/{a['id']}/balance", params={"at": start}), "not_found", 404)

"""The group commit on a real server and PostgreSQL (issue 12): transfers that wait together share one transaction,
each answered and stored for its own key as if it had run alone; the ledger stays exact."""

from __future__ import annotations

import asyncio
import re
import secrets
from decimal import Decimal
from pathlib import Path

import httpx
import psycopg

from app.bootstrap import Services
from tests.e2e.helpers import API, assert_problem, balance, key, open_account, transfer, transfer_body
from tests.e2e.test_bounded_waiting import api, row_locks, until_backends


async def group_sizes(client: httpx.AsyncClient) -> tuple[float, float]:
    """(transactions, requests) the group commit has run, from /metrics."""
    text = (await client.get("/metrics")).text
    found = {name: float(value) for name, value in
             re.findall(r"^group_commit_requests_(count|sum)(?:\{[^}]*\})? (\S+)$", text, re.MULTILINE)}
    return found["count"], found["sum"]


async def test_transfers_waiting_together_share_a_transaction_each_with_its_own_answer(
    database_url: str, redis_url: str, services: Services, tmp_path: Path
) -> None:
    # One transaction at a time: while an outside lock holds the first transfer, the others queue, then go as one.
    async with api(database_url, redis_url, services, tmp_path / "api.log",
                   PAYMENTS_DATABASE_GROUP_TRANSACTIONS="1", PAYMENTS_DATABASE_ACQUIRE_TIMEOUT="30s") as client:
        blocked_source, sink = (await open_account(client, "10.00"))["id"], (await open_account(client))["id"]
        rich = [(await open_account(client, "100.00"))["id"] for _ in range(4)]
        poor = (await open_account(client, "1.00"))["id"]
        done_key = key()
        done = await transfer(client, rich[0], rich[1], "5.00", idempotency_key=done_key)
        assert done.status_code == 201, done.text
        before = await group_sizes(client)

        with row_locks(database_url, [blocked_source]) as blocker:
            first = asyncio.create_task(transfer(client, blocked_source, sink, "2.00"))
            await until_backends(database_url, blocker, waiting=1, idle=0)
            keys = [key() for _ in range(12)]
            traces = [secrets.token_hex(16) for _ in range(10)]
            queued = [asyncio.create_task(client.post(
                f"{API}/transfers", json=transfer_body(rich[n % 4], rich[(n + 1) % 4], "1.00"),
                headers={"Idempotency-Key": keys[n], "traceparent": f"00-{traces[n]}-{secrets.token_hex(8)}-01"}))
                for n in range(10)]
            queued.append(asyncio.create_task(transfer(client, poor, sink, "5.00", idempotency_key=keys[10])))
            queued.append(asyncio.create_task(transfer(client, rich[2], rich[2], "1.00", idempotency_key=keys[11])))
            queued.append(asyncio.create_task(transfer(client, rich[0], rich[1], "5.00", idempotency_key=done_key)))
            await asyncio.sleep(0.2)  # the replay reaches the queue first: the next one finds its key queued
            queued.append(asyncio.create_task(transfer(client, rich[0], rich[1], "6.00", idempotency_key=done_key)))
            await asyncio.sleep(0.5)
            assert not any(task.done() for task in [first, *queued[:12]])  # queued behind the one transaction
        assert (await first).status_code == 201
        answers = [await task for task in queued]

        assert [answer.status_code for answer in answers[:10]] == [201] * 10
        assert_problem(answers[10], "insufficient_funds", 422)
        assert answers[11].status_code == 422  # same account: refused by the transfer itself
        assert answers[12].status_code == 201 and answers[12].content == done.content
        assert answers[12].headers["Idempotent-Replayed"] == "true"
        assert_problem(answers[13], "idempotency_request_in_progress", 409)  # its key was queued already
        transactions, requests = await group_sizes(client)
        assert requests - before[1] >= transactions - before[0] + 12, "the queued transfers did not go together"

        # Each stored answer replays byte for byte: the refusals too, stored with the group's commit.
        for n, answer in enumerate(answers[:12]):
            source, destination, amount = ((rich[n % 4], rich[(n + 1) % 4], "1.00") if n < 10 else
                                           (poor, sink, "5.00") if n == 10 else (rich[2], rich[2], "1.00"))
            again = await transfer(client, source, destination, amount, idempotency_key=keys[n])
            assert (again.status_code, again.content) == (answer.status_code, answer.content)
            assert again.headers["Idempotent-Replayed"] == "true"

        # Each transfer's event carries its own request's trace, though the group wrote them all at once.
        with psycopg.connect(database_url) as db:
            for n, answer in enumerate(answers[:10]):
                row = db.execute("SELECT trace_context FROM outbox WHERE aggregate_id = %s",
                                 [answer.json()["id"]]).fetchone()
                assert row is not None and row[0]["traceparent"].split("-")[1] == traces[n]

        assert [Decimal(await balance(client, account)) for account in rich] == [94, 105, 101, 100]
        assert (await balance(client, poor), await balance(client, sink)) == ("1.00", "2.00")
        assert await services.audit.drift() == []


async def test_external_payments_waiting_together_share_a_transaction_each_with_its_own_answer(
    database_url: str, redis_url: str, services: Services, tmp_path: Path
) -> None:
    """POST /payments (external) goes through the group commit as transfers do: the queued creations go as one
    transaction; a refusal (insufficient funds, an unknown account, another currency) changes nothing and is
    stored for its own key; every creation moves its amount to clearing."""
    async with api(database_url, redis_url, services, tmp_path / "api.log",
                   PAYMENTS_DATABASE_GROUP_TRANSACTIONS="1", PAYMENTS_DATABASE_ACQUIRE_TIMEOUT="30s") as client:
        def body(source: str, amount: str, currency: str = "USD") -> dict[str, str]:
            return {"payment_type": "external_payment", "source_account_id": source, "amount": amount,
                    "currency": currency, "provider": "stripe"}

        blocked = (await open_account(client, "10.00"))["id"]
        rich = [(await open_account(client, "100.00"))["id"] for _ in range(4)]
        poor = (await open_account(client, "1.00"))["id"]
        before = await group_sizes(client)
        with row_locks(database_url, [blocked]) as blocker:
            first = asyncio.create_task(client.post(f"{API}/payments", json=body(blocked, "2.00"),
                                                    headers={"Idempotency-Key": key()}))
            await until_backends(database_url, blocker, waiting=1, idle=0)
            requests = [body(rich[n % 4], f"{n + 1}.00") for n in range(8)] + [
                body(poor, "5.00"), body("00000000-0000-7000-8000-000000000000", "1.00"), body(rich[0], "1.00", "EUR")]
            keys = [key() for _ in requests]
            queued = [asyncio.create_task(client.post(f"{API}/payments", json=each, headers={"Idempotency-Key": k}))
                      for each, k in zip(requests, keys, strict=True)]
            await asyncio.sleep(0.5)
            assert not any(task.done() for task in [first, *queued])  # queued behind the one transaction
        assert (await first).status_code == 202
        answers = [await task for task in queued]

        assert [answer.status_code for answer in answers[:8]] == [202] * 8
        assert {answer.json()["status"] for answer in answers[:8]} <= {"pending", "processing", "completed"}
        assert_problem(answers[8], "insufficient_funds", 422)
        assert answers[9].status_code == 404
        assert answers[10].status_code == 422  # the account holds USD
        transactions, sizes = await group_sizes(client)
        assert sizes - before[1] >= transactions - before[0] + 10, "the queued creations did not go together"
        for each, k, answer in zip(requests, keys, answers, strict=True):  # each stored for its own key
            again = await client.post(f"{API}/payments", json=each, headers={"Idempotency-Key": k})
            assert (again.status_code, again.content) == (answer.status_code, answer.content)
            assert again.headers["Idempotent-Replayed"] == "true"

        paid = [sum(n + 1 for n in range(8) if n % 4 == account) for account in range(4)]
        assert [Decimal(await balance(client, account)) for account in rich] == [100 - p for p in paid]
        assert (await balance(client, poor), await balance(client, blocked)) == ("1.00", "8.00")
        assert await services.audit.drift() == []

"""Bounded waiting (API.md §1): a request that cannot get a pooled connection in time is shed with 503 and
Retry-After, its Idempotency-Key left free; requests piling onto one hot account wait for their turn without
holding connections, so transfers between other accounts keep flowing while the hot row is held."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg

from app.bootstrap import Services
from tests.conftest import new_api_key
from tests.e2e.conftest import start_api
from tests.e2e.helpers import API, assert_problem, balance, key, open_account, transfer

#: (backends waiting for a lock, backends idle inside a transaction) of the database, other than `mine`.
BACKENDS = """SELECT count(*) FILTER (WHERE wait_event_type = 'Lock'),
       count(*) FILTER (WHERE state = 'idle in transaction')
FROM pg_stat_activity WHERE datname = current_database() AND NOT pid = ANY(%s)"""


@contextlib.asynccontextmanager
async def api(database_url: str, redis_url: str, services: Services, log: Path, **env: str
              ) -> AsyncIterator[httpx.AsyncClient]:
    """`payments serve` with `env`, and a client of a new tenant; the server is stopped on the way out."""
    base_url, process = start_api(database_url, redis_url, log, **env)
    try:
        headers = {"Authorization": f"Bearer {await new_api_key(services)}"}
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=90, limits=limits) as client:
            yield client
    finally:
        process.stop()


@contextlib.contextmanager
def row_locks(database_url: str, account_ids: list[str]) -> Iterator[psycopg.Connection[Any]]:
    """An outside transaction holding the accounts' rows `FOR UPDATE` until the block ends (then rolled back)."""
    with psycopg.connect(database_url) as blocker:
        blocker.execute("SELECT id FROM accounts WHERE id = ANY(%s::uuid[]) FOR UPDATE", [account_ids])
        try:
            yield blocker
        finally:
            blocker.rollback()


async def until_backends(database_url: str, blocker: psycopg.Connection[Any], *, waiting: int, idle: int) -> None:
    """Return once at least `waiting` backends wait for a lock and `idle` sit in a transaction (the API's)."""
    with psycopg.connect(database_url, autocommit=True) as probe:
        mine = [blocker.info.backend_pid, probe.info.backend_pid]
        async with asyncio.timeout(30):
            while True:
                row = probe.execute(BACKENDS, [mine]).fetchone()
                assert row is not None
                if row[0] >= waiting and row[1] >= idle:
                    return
                await asyncio.sleep(0.02)


def assert_shed(response: httpx.Response) -> None:
    assert_problem(response, "service_unavailable", 503)
    assert int(response.headers["Retry-After"]) >= 1


async def test_a_request_without_a_connection_in_time_is_shed_and_its_key_stays_free(
    database_url: str, redis_url: str, services: Services, tmp_path: Path
) -> None:
    async with api(database_url, redis_url, services, tmp_path / "api.log", PAYMENTS_DATABASE_POOL_MAX="2",
                   PAYMENTS_DATABASE_ACQUIRE_TIMEOUT="500ms", PAYMENTS_DATABASE_STATEMENT_TIMEOUT="60s") as client:
        x, y, c = [(await open_account(client, "100.00", user_id=name))["id"] for name in ("x", "y", "c")]
        to_x, to_y, d = [(await open_account(client, user_id=name))["id"] for name in ("to-x", "to-y", "d")]
        retried = key()
        with row_locks(database_url, [x, y]) as blocker:
            # Two transfers that wait for the held rows in PostgreSQL occupy both pooled connections.
            stuck = [asyncio.create_task(transfer(client, x, to_x, "1.00")),
                     asyncio.create_task(transfer(client, y, to_y, "1.00"))]
            await until_backends(database_url, blocker, waiting=2, idle=0)
            assert_shed(await transfer(client, c, d, "5.00", idempotency_key=retried))
        assert [response.status_code for response in await asyncio.gather(*stuck)] == [201, 201]
        assert (await balance(client, c), await balance(client, d)) == ("100.00", "0.00")  # nothing was written

        again = await transfer(client, c, d, "5.00", idempotency_key=retried)  # the key was not kept
        assert again.status_code == 201, again.text
        assert "idempotent-replayed" not in again.headers
        assert (await balance(client, c), await balance(client, d)) == ("95.00", "5.00")


async def test_a_hot_account_does_not_starve_the_pool_for_other_accounts(
    database_url: str, redis_url: str, services: Services, tmp_path: Path
) -> None:
    async with api(database_url, redis_url, services, tmp_path / "api.log", PAYMENTS_DATABASE_POOL_MAX="3",
                   PAYMENTS_DATABASE_ACQUIRE_TIMEOUT="20s", PAYMENTS_DATABASE_STATEMENT_TIMEOUT="60s") as client:
        hot = (await open_account(client, "1000.00", user_id="hot"))["id"]
        sinks = [(await open_account(client, user_id=f"sink-{i}"))["id"] for i in range(4)]
        c = (await open_account(client, "100.00", user_id="c"))["id"]
        d = (await open_account(client, user_id="d"))["id"]
        # Transfers (and external payments) queue in the group commit's memory; holds take a connection each, so
        # they are what could starve the pool here.
        hold = {"source_account_id": hot, "destination_account_id": sinks[0], "amount": "1.00", "currency": "USD"}
        with row_locks(database_url, [hot]) as blocker:
            queued = [asyncio.create_task(transfer(client, hot, sinks[i % 4], "1.00")) for i in range(20)]
            queued += [asyncio.create_task(client.post(f"{API}/holds", json=hold,
                                                       headers={"Idempotency-Key": key()})) for _ in range(4)]
            # One hot request waits for the row in PostgreSQL and the next one is connected behind it.
            await until_backends(database_url, blocker, waiting=1, idle=1)
            cold = [await transfer(client, c, d, "1.00") for _ in range(5)]
            assert [response.status_code for response in cold] == [201] * 5, [r.text for r in cold]
            assert not any(task.done() for task in queued), "the hot row is still held: no hot request ended"
        answers = await asyncio.gather(*queued)

        for response in answers:
            if response.status_code == 503:
                assert_shed(response)
            else:
                assert response.status_code == 201, response.text
        moved = sum(response.status_code == 201 for response in answers[:20])  # the holds move nothing yet
        assert Decimal(await balance(client, hot)) == 1000 - moved
        assert sum([Decimal(await balance(client, sink)) for sink in sinks]) == moved
        assert (await balance(client, c), await balance(client, d)) == ("95.00", "5.00")

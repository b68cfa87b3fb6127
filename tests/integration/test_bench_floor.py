"""The benchmark floor (bench/floor.sql, bench/floor.py) on real PostgreSQL: it must do the API's transfer, or the
ratio API / floor that bench/run.py prints measures nothing.

Its transfers, run concurrently in both directions, keep the ledger sound by the product's own audit (balances
equal their entries, balance_after, every hash chain, each tenant summing to zero); its refusals change nothing;
and the app answers the API's body over HTTP with the API's statuses."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from uuid import UUID

import asyncpg
import httpx
import pytest

from app.bootstrap import Services, bootstrap
from app.configuration import load_settings
from core.accounts import FUNDING
from core.clock import SystemClock
from core.hash_chain import GENESIS, entry_hash
from core.ids import new_id
from tests.conftest import ROOT, SECRETS_KEYS, fresh_database
from tests.contract.conftest import new_tenant, open_account

pytestmark = pytest.mark.timeout(120)

FLOOR_SQL = ROOT / "bench" / "floor.sql"
TRANSFER = "SELECT bench_floor_transfer($1, $2, $3, $4, $5, $6, $7)"
SNAPSHOT = """SELECT (SELECT array_agg((id, balance, version, last_entry_hash)::text ORDER BY id) FROM accounts),
                     (SELECT count(*) FROM account_transactions)"""


@pytest.fixture(scope="module")
def floor_database(admin_database_url: str) -> Iterator[str]:
    with fresh_database(admin_database_url) as url:
        yield url


@pytest.fixture
async def floor_services(floor_database: str, redis_url: str) -> AsyncIterator[Services]:
    built = await bootstrap(load_settings({"PAYMENTS_SECRETS_KEYS": SECRETS_KEYS}), floor_database, redis_url)
    await built.pool.execute(FLOOR_SQL.read_text())
    yield built
    await built.aclose()


async def floor_transfer(pool: asyncpg.Pool, source: UUID, destination: UUID, minor: int,
                         currency: str = "USD") -> None:
    await pool.fetchval(TRANSFER, source, destination, minor, currency, new_id(), new_id(), new_id())


async def test_concurrent_floor_transfers_keep_the_ledger_sound(floor_services: Services) -> None:
    """300 transfers among 5 accounts in random directions, 20 at a time (so that locks are contended in both
    orders): no deadlock, no lost update, every chain verifies, and the money is where the entries say."""
    services, clock = floor_services, SystemClock()
    tenant = await new_tenant(services.uow_factory, clock)
    accounts = [(await open_account(services.uow_factory, clock, tenant.id, 10_000, user_id=f"u{i}")).id
                for i in range(5)]
    rng = random.Random(12)
    moves = [(*rng.sample(accounts, 2), rng.randint(1, 500)) for _ in range(300)]
    gate = asyncio.Semaphore(20)

    async def one(source: UUID, destination: UUID, minor: int) -> None:
        async with gate:
            await floor_transfer(services.pool, source, destination, minor)

    await asyncio.gather(*(one(*move) for move in moves))

    assert await services.audit.drift() == []
    expected = {a: 10_000 for a in accounts}
    for source, destination, minor in moves:
        expected[source] -= minor
        expected[destination] += minor
    rows = await services.pool.fetch("SELECT id, balance, version FROM accounts WHERE id = ANY($1::uuid[])",
                                     accounts)
    assert {r["id"]: r["balance"] for r in rows} == expected
    assert sum(r["version"] for r in rows) == 5 + 2 * len(moves)  # one opening entry each, two per transfer
    # the chain, recomputed here from the stored fields with core.hash_chain: the floor hashes what the API hashes
    for account in accounts:
        previous = GENESIS
        for e in await services.pool.fetch(
                "SELECT * FROM account_transactions WHERE account_id = $1 ORDER BY seq", account):
            previous = entry_hash(previous, id=e["id"], account_id=e["account_id"], payment_id=e["payment_id"],
                                  type=e["type"], amount=e["amount"], balance_after=e["balance_after"],
                                  currency=e["currency"].strip(), created_at=e["created_at"])
            assert e["hash"] == previous
        assert await services.pool.fetchval("SELECT last_entry_hash FROM accounts WHERE id = $1", account) == previous


async def test_refused_floor_transfers_change_nothing(floor_services: Services) -> None:
    services, clock = floor_services, SystemClock()
    tenant, other = await new_tenant(services.uow_factory, clock), await new_tenant(services.uow_factory, clock)
    alice = (await open_account(services.uow_factory, clock, tenant.id, 1_000, user_id="alice")).id
    bob = (await open_account(services.uow_factory, clock, tenant.id, 0, user_id="bob")).id
    euro = (await open_account(services.uow_factory, clock, tenant.id, 1_000, currency="EUR", user_id="eve")).id
    stranger = (await open_account(services.uow_factory, clock, other.id, 1_000, user_id="zed")).id
    frozen = (await open_account(services.uow_factory, clock, tenant.id, 1_000, user_id="fay")).id
    await services.pool.execute("UPDATE accounts SET status = 'frozen' WHERE id = $1", frozen)
    funding = await services.pool.fetchval("SELECT id FROM accounts WHERE tenant_id = $1 AND kind = $2",
                                           tenant.id, FUNDING)
    before = await services.pool.fetchrow(SNAPSHOT)
    refusals: list[tuple[tuple[UUID, UUID, int, str], str]] = [
        ((alice, bob, 1_001, "USD"), "23514"),  # insufficient funds
        ((frozen, bob, 1, "USD"), "55000"),  # a frozen source
        ((alice, frozen, 1, "USD"), "55000"),  # a frozen destination
        ((alice, alice, 1, "USD"), "22023"),  # the same account
        ((alice, bob, 0, "USD"), "22023"),  # not positive
        ((alice, euro, 1, "USD"), "22023"),  # the destination holds EUR
        ((alice, bob, 1, "EUR"), "22023"),  # neither holds the transfer's currency
        ((alice, stranger, 1, "USD"), "P0002"),  # another tenant's account
        ((funding, bob, 1, "USD"), "P0002"),  # a system account
        ((alice, new_id(), 1, "USD"), "P0002"),  # no such account
        ((new_id(), alice, 1, "USD"), "P0002"),
    ]
    for (source, destination, minor, currency), sqlstate in refusals:
        with pytest.raises(asyncpg.PostgresError) as raised:
            await floor_transfer(services.pool, source, destination, minor, currency)
        assert raised.value.sqlstate == sqlstate, (source, destination, minor, currency, raised.value)
    assert await services.pool.fetchrow(SNAPSHOT) == before
    await floor_transfer(services.pool, alice, bob, 1_000)  # the whole balance still goes
    assert await services.pool.fetchval("SELECT balance FROM accounts WHERE id = $1", alice) == 0
    await services.pool.execute("UPDATE accounts SET overdraft_limit = 500 WHERE id = $1", alice)
    await floor_transfer(services.pool, alice, bob, 500)  # down to minus the overdraft limit, as the API
    with pytest.raises(asyncpg.PostgresError) as beyond:
        await floor_transfer(services.pool, alice, bob, 1)
    assert beyond.value.sqlstate == "23514"
    assert await services.pool.fetchval("SELECT balance FROM accounts WHERE id = $1", alice) == -500


@pytest.fixture
def floor_app(floor_database: str, tmp_path: Path) -> Iterator[str]:
    """bench/floor.py as bench/run.py starts it, on a free port, stopped (SIGTERM) afterwards."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = tmp_path / "floor.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMENTS_")}
    process = subprocess.Popen([sys.executable, str(ROOT / "bench" / "floor.py"), "--database-url", floor_database,
                                "--port", str(port)], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(30)
    assert "ERROR" not in log.read_text(), log.read_text()


async def test_the_floor_app_answers_the_apis_body_with_the_apis_statuses(
        floor_services: Services, floor_app: str) -> None:
    services, clock = floor_services, SystemClock()
    tenant = await new_tenant(services.uow_factory, clock)
    alice = (await open_account(services.uow_factory, clock, tenant.id, 1_000, user_id="alice")).id
    bob = (await open_account(services.uow_factory, clock, tenant.id, 0, user_id="bob")).id

    def body(source: UUID, destination: UUID, amount: object, currency: str = "USD") -> dict[str, object]:
        return {"source_account_id": str(source), "destination_account_id": str(destination), "amount": amount,
                "currency": currency}

    async with httpx.AsyncClient(base_url=floor_app, headers={"Idempotency-Key": "ignored"}) as http:
        created = await http.post("/api/v1/transfers", json=body(alice, bob, "2.50"))
        assert created.status_code == 201, created.text
        assert created.json()["status"] == "completed"
        # a JSON number is read exactly, as the API reads it
        assert (await http.post("/api/v1/transfers", content=(
            f'{{"source_account_id":"{alice}","destination_account_id":"{bob}","amount":0.10,"currency":"USD"}}'
        ))).status_code == 201
        for request, status in [
            (body(alice, bob, "100.00"), 422),  # insufficient funds: 7.40 left
            (body(alice, bob, "0.001"), 422),  # more places than USD has
            (body(alice, bob, "1", "XXX"), 422),  # not a currency
            (body(alice, new_id(), "1"), 404),
            ({"amount": "1"}, 422),
        ]:
            answer = await http.post("/api/v1/transfers", json=request)
            assert answer.status_code == status, (request, answer.text)
        assert (await http.post("/api/v1/transfers", content=b"{not json")).status_code == 422
    balances = await services.pool.fetch("SELECT id, balance FROM accounts WHERE id = ANY($1::uuid[])", [alice, bob])
    assert {r["id"]: r["balance"] for r in balances} == {alice: 740, bob: 260}
    assert await services.audit.drift() == []

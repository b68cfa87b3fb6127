"""PAYMENTS_DATABASE_READ_URL (API.md §8) against a real streaming replica made with `pg_basebackup`.

Lists, statements, the events feed and balance history read the replica; reads by id and every write go to the
primary. With the replica's replay paused, a write made since is missing from a list (it came from the replica)
while a read by id sees it (the primary). Two API processes share the pair: one tolerates any lag (so a list reads
the paused replica however slow the machine is), the other tolerates a second (so the same pause soon sends its
lists to the primary). A stopped replica is bypassed by both, and used again once it is back.

The events feed on a replica keeps its exactly-once, in-order promise: a transaction that took its id before
another committed, and is still running on the primary, holds the replica's feed back as it does the primary's.

One primary+replica pair serves the whole module (a few seconds to make); each test makes its own tenant.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import psycopg
import pytest

from adapters.crypto import SecretBox, parse_keys
from adapters.postgres.migrate import apply_migrations
from adapters.postgres.pool import create_pool
from adapters.postgres.replica import PgReads, PgReplica
from adapters.postgres.uow import PgUnitOfWork
from app.bootstrap import Services, bootstrap
from app.configuration import load_settings
from core.events import OutboxMessage
from core.money import Money
from core.ports import Page
from core.usecases.accounts import CreateAccount, create_account
from core.usecases.events import read_feed
from core.usecases.transfers import MakeTransfer, make_transfer
from tests.conftest import SECRETS_KEYS, new_api_key_for_url
from tests.e2e.conftest import Process, free_port, stack_env, wait_ready
from tests.e2e.helpers import API, metric_samples, open_account, server_errors, transfer
from tests.integration.test_events_feed import ROUNDS, WRITERS, feed_reader, problems, race
from tests.integration.test_events_feed import _everything as everything
from tests.replica_pair import ReplicaPair, replica_pair

DATABASE = "payments"


@pytest.fixture(scope="module")
def pair() -> Iterator[ReplicaPair]:
    with replica_pair() as made:
        with psycopg.connect(made.primary.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
        apply_migrations(made.primary.url(DATABASE))
        yield made


@pytest.fixture(scope="module")
def apis(pair: ReplicaPair, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Two API processes reading the replica: `tolerant` (any lag) and `strict` (at most one second)."""
    log_dir, processes, urls = tmp_path_factory.mktemp("replica-api"), list[Process](), {}
    try:
        for name, max_lag in (("tolerant", "1h"), ("strict", "1s")):  # both start at once, then both are awaited
            port = free_port()
            env = stack_env(pair.primary.url(DATABASE), redis_url, port, PAYMENTS_DATABASE_READ_MAX_LAG=max_lag,
                            PAYMENTS_DATABASE_READ_URL=pair.replica.url(DATABASE))
            processes.append(Process(["serve"], env, Path(log_dir / f"{name}.log")).start())
            urls[name] = f"http://127.0.0.1:{port}"
        for url, process in zip(urls.values(), processes, strict=True):
            wait_ready(url, process)
        yield urls
    finally:
        for process in processes:
            process.stop()


@pytest.fixture
async def clients(pair: ReplicaPair, apis: dict[str, str]) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """An HTTP client per API process, as one fresh tenant, once both use the replica."""
    key = await new_api_key_for_url(pair.primary.url(DATABASE))
    made = {name: httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
            for name, url in apis.items()}
    try:
        for client in made.values():
            await wait_until(client, in_use=1.0)
        yield made
    finally:
        for client in made.values():
            await client.aclose()


async def replica_gauges(client: httpx.AsyncClient) -> tuple[float | None, float]:
    """(database_replica_lag_seconds or None, database_replica_in_use) from the process's /metrics."""
    text = (await client.get("/metrics")).text
    lag = metric_samples(text, "database_replica_lag_seconds")
    return (lag[0][1] if lag else None), metric_samples(text, "database_replica_in_use")[0][1]


async def wait_until(client: httpx.AsyncClient, *, in_use: float, down: bool = False, lagging: float = 0.0,
                     timeout: float = 60) -> None:
    """Wait until the process says it reads (1) or bypasses (0) the replica; with `down`, as one it cannot reach (no
    lag reported); with `lagging`, as one that it reaches and finds more than that many seconds behind."""
    async with asyncio.timeout(timeout):
        while True:
            lag, used = await replica_gauges(client)
            if used == in_use and (not down or lag is None) and (not lagging or (lag or 0.0) > lagging):
                return
            await asyncio.sleep(0.1)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.1)


async def lacks(found: Awaitable[set[str]], wanted: str) -> bool:
    return wanted not in await found


async def equals(found: Awaitable[set[str]], wanted: set[str]) -> bool:
    return await found == wanted


async def answers(found: Awaitable[str], wanted: str) -> bool:
    return await found == wanted


async def history(client: httpx.AsyncClient, account_id: str) -> str:
    """The account's posted balance `?at=` a far future instant (balance history)."""
    response = await client.get(f"{API}/accounts/{account_id}/balance", params={"at": "2999-01-01T00:00:00Z"})
    assert response.status_code == 200, response.text
    value: str = response.json()["balance"]
    return value


async def closing(client: httpx.AsyncClient, account_id: str) -> str:
    """The closing balance of the account's statement over all time."""
    response = await client.get(f"{API}/accounts/{account_id}/statement",
                                params={"from": "2000-01-01T00:00:00Z", "to": "2999-01-01T00:00:00Z"})
    assert response.status_code == 200, response.text
    value: str = response.json()["closing_balance"]
    return value


async def listed(client: httpx.AsyncClient) -> set[str]:
    response = await client.get(f"{API}/accounts", params={"limit": "100"})
    assert response.status_code == 200, response.text
    return {account["id"] for account in response.json()["data"]}


async def feed_accounts(client: httpx.AsyncClient) -> set[str]:
    response = await client.get(f"{API}/events", params={"type": "account.created", "limit": "100"})
    assert response.status_code == 200, response.text
    return {event["data"]["object"]["id"] for event in response.json()["data"]}


async def test_lists_read_the_replica_reads_by_id_the_primary_and_a_lagging_or_stopped_replica_is_bypassed(
    pair: ReplicaPair, clients: dict[str, httpx.AsyncClient],
) -> None:
    tolerant, strict = clients["tolerant"], clients["strict"]
    errors = [server_errors((await client.get("/metrics")).text) for client in (tolerant, strict)]
    before = await open_account(tolerant, "10.00")
    await pair.caught_up()
    await pair.pause_replay()
    try:
        after = await open_account(tolerant, "5.00")  # written to the primary; the replica does not replay it
        moved = await transfer(tolerant, before["id"], after["id"], "1.00")  # `before`: 9.00 now, 10.00 on the replica
        assert moved.status_code == 201, moved.text
        # Lists, the feed, a statement and balance history: from the replica, which has `before` as it was.
        # (Each is awaited rather than asked once: the primary never answers what the replica does, so one such
        # answer proves the replica served it, and a sample a loaded machine made time out may bypass it a moment.)
        assert before["id"] in await listed(tolerant)
        await eventually(lambda: lacks(listed(tolerant), after["id"]))
        await eventually(lambda: equals(feed_accounts(tolerant), {before["id"]}))
        await eventually(lambda: answers(history(tolerant, before["id"]), "10.00"))
        await eventually(lambda: answers(closing(tolerant, before["id"]), "10.00"))
        # Reads by id and the current balance come from the primary: the client sees its own writes.
        assert (await tolerant.get(f"{API}/accounts/{after['id']}")).json()["id"] == after["id"]
        assert (await tolerant.get(f"{API}/accounts/{before['id']}/balance")).json()["balance"] == "9.00"
        # The replica does not know `after` yet: its entries and statement are asked of the primary.
        entries = await tolerant.get(f"{API}/accounts/{after['id']}/transactions")
        assert sorted(entry["amount"] for entry in entries.json()["data"]) == ["1.00", "5.00"], entries.text
        assert await closing(tolerant, after["id"]) == "6.00"

        # Lag beyond PAYMENTS_DATABASE_READ_MAX_LAG (1 s): the strict process bypasses the replica, which still
        # lacks `after`, so its lists now come from the primary.
        await wait_until(strict, in_use=0.0, lagging=1.0)
        assert after["id"] in await listed(strict)
        assert await feed_accounts(strict) == {before["id"], after["id"]}
        assert await history(strict, before["id"]) == "9.00"
        await eventually(lambda: lacks(listed(tolerant), after["id"]))  # the tolerant one still reads the replica

        # The replica stopped: both answer every list from the primary, none with an error.
        pair.replica.stop()
        for client in (tolerant, strict):
            assert after["id"] in await listed(client)
            assert await feed_accounts(client) == {before["id"], after["id"]}
            assert await history(client, before["id"]) == "9.00"
            assert await closing(client, before["id"]) == "9.00"
            await wait_until(client, in_use=0.0, down=True)
    finally:
        if not (pair.replica.data / "postmaster.pid").exists():
            pair.replica.start()  # a restarted replica replays again (a pause does not survive a restart)
        else:
            await pair.resume_replay()

    # Back and caught up: both read it again; paused once more, the tolerant one's lists lack a new write.
    await pair.caught_up()
    for client in (tolerant, strict):
        await wait_until(client, in_use=1.0)
    await pair.pause_replay()
    try:
        later = await open_account(tolerant, "1.00")
        await eventually(lambda: lacks(listed(tolerant), later["id"]))
        assert (await tolerant.get(f"{API}/accounts/{later['id']}")).status_code == 200
    finally:
        await pair.resume_replay()
    # No request of this test got a 5xx (counted from its start: readiness polls while the processes started may
    # have been counted as such under load).
    assert [server_errors((await client.get("/metrics")).text) for client in (tolerant, strict)] == errors


async def test_an_idle_primary_is_no_lag(pair: ReplicaPair) -> None:
    """Nothing written for a while: the replica's last replayed transaction grows old, but it lags nothing."""
    primary = await create_pool(pair.primary.url(DATABASE), min_size=0, max_size=2, command_timeout=10)
    replica_pool = await create_pool(pair.replica.url(DATABASE), min_size=0, max_size=2, command_timeout=10)
    clock = [0.0]  # the sampler's clock, moved by hand: a loaded machine cannot make the samples look far apart
    replica = PgReplica(replica_pool, primary, max_lag=1.0, clock=lambda: clock[0])
    try:
        await pair.caught_up()
        async with asyncio.timeout(60):
            while await replica_pool.fetchval(
                    "SELECT now() - pg_last_xact_replay_timestamp() < interval '1.5 seconds'"):
                await asyncio.sleep(0.1)
        # Two samples a tenth of a (sampler's) second apart: the second knows where the primary was at the first
        # (a WAL record the primary writes on its own, a standby snapshot, may land between reading its position
        # and the replica's), and the replica has replayed that long since.
        await replica.sample()
        clock[0] += 0.1
        await replica.sample()
        assert replica.lag is not None and replica.lag <= 0.1 and replica.usable()
    finally:
        await replica.aclose()
        await primary.close()


@pytest.fixture
async def primary_services(pair: ReplicaPair, redis_url: str) -> AsyncIterator[Services]:
    built = await bootstrap(load_settings({"PAYMENTS_SECRETS_KEYS": SECRETS_KEYS}), pair.primary.url(DATABASE),
                            redis_url)
    try:
        yield built
    finally:
        await built.aclose()


async def test_the_events_feed_on_the_replica_waits_for_a_transaction_still_running_on_the_primary(
    pair: ReplicaPair, primary_services: Services,
) -> None:
    """A transfer takes its transaction id (locking its accounts), then an account is opened and committed; until
    the transfer commits, the replica's feed must not show the account's event, whose transaction id is larger:
    a reader would pass it and never see the transfer's event, which comes before it in the feed."""
    services = primary_services
    replica_pool = await create_pool(pair.replica.url(DATABASE), min_size=0, max_size=2, command_timeout=10)

    async def on_replica(tenant: Any, after: Any = None) -> list[OutboxMessage]:
        uow = PgUnitOfWork(replica_pool, read_only=True, acquire_timeout=5,
                           secret_box=SecretBox(parse_keys(SECRETS_KEYS)))
        async with uow:
            return list((await read_feed(tenant, after=after, event_type=None, limit=100, uow=uow)).items)

    def named(events: list[OutboxMessage]) -> list[str]:
        return [f"{event.topic}:{event.aggregate_id}" for event in events]

    try:
        async with services.uow_factory() as uow:
            tenant = (await uow.tenants.get_or_create(f"replica-feed-{secrets.token_hex(4)}", services.clock.now())).id
        opened = []
        for holder in ("a", "b"):
            async with services.uow_factory() as uow:
                opened.append(await create_account(CreateAccount(tenant_id=tenant, user_id=holder, currency="USD",
                                                                 initial_balance=Money(1_000, "USD")),
                                                   uow=uow, clock=services.clock))
        locked, release = asyncio.Event(), asyncio.Event()

        async def slow_transfer() -> Any:
            async with services.uow_factory() as uow:
                payment = await make_transfer(MakeTransfer(tenant_id=tenant, source_account_id=opened[0].id,
                                                           destination_account_id=opened[1].id,
                                                           amount=Money(1, "USD")), uow=uow, clock=services.clock)
                locked.set()
                await release.wait()
            return payment

        transfer = asyncio.ensure_future(slow_transfer())
        try:
            await asyncio.wait_for(locked.wait(), 30)
            async with services.uow_factory() as uow:
                late = await create_account(CreateAccount(tenant_id=tenant, user_id="c", currency="USD"), uow=uow,
                                            clock=services.clock)
            await pair.caught_up()
            early = [f"account.created:{account.id}" for account in opened]
            seen = await on_replica(tenant)
            assert named(seen) == early, "the replica's feed served an event past a transaction still running"
        finally:
            release.set()
            payment = await asyncio.wait_for(transfer, 30)
        await pair.caught_up()
        # Polling on after the last event seen: the transfer's event, then the account's; everything, in order.
        rest = await on_replica(tenant, after=seen[-1].id)
        assert named(rest) == [f"transfer.completed:{payment.id}", f"account.created:{late.id}"]
        assert named(await on_replica(tenant)) == [*early, *named(rest)]
    finally:
        await replica_pool.close()


async def test_a_poller_moving_between_replica_and_primary_gets_every_event_once_in_order(
    pair: ReplicaPair, primary_services: Services,
) -> None:
    """The events feed race of tests/integration/test_events_feed.py (writers committing out of the order they
    took their transaction ids in, some rolling back), followed by a poller whose reads alternate between the
    replica and the primary as the routing may send them (an `after` the replica does not hold yet is asked of
    the primary): every committed event once, none rolled back, in the feed's order."""
    services = primary_services
    replica_pool = await create_pool(pair.replica.url(DATABASE), min_size=0, max_size=2, command_timeout=10)
    replica = PgReplica(replica_pool, services.pool, max_lag=3600)
    await replica.sample()
    assert replica.usable()
    box, polls, answered = SecretBox(parse_keys(SECRETS_KEYS)), [0], {"replica": 0, "primary": 0}

    def on(pool: Any) -> Callable[[], PgUnitOfWork]:
        return lambda: PgUnitOfWork(pool, read_only=True, acquire_timeout=5, secret_box=box)

    async def read(tenant: UUID, after: UUID | None, limit: int) -> Page[OutboxMessage]:
        polls[0] += 1
        reads = PgReads(on(services.pool), on(replica_pool), replica if polls[0] % 2 else None)

        async def use_case(uow: Any) -> Page[OutboxMessage]:
            page = await read_feed(tenant, after=after, event_type=None, limit=limit, uow=uow)
            answered["replica" if uow._pool is replica_pool else "primary"] += 1
            return page
        return await reads.run(use_case)

    try:
        run, tenant, start = await race(services, read, seed=15)
        assert problems(run, await everything(feed_reader(services), tenant, start)) == []
        assert len(run.committed) == WRITERS * ROUNDS * 4 // 5
        assert answered["replica"] > 10 and answered["primary"] > 10, answered  # both served the poller
    finally:
        await replica.aclose()

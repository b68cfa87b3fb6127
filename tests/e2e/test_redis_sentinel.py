"""Redis through Sentinel: the API and a worker reach the master the Sentinel names; the master is SIGKILLed under
load, the Sentinel promotes the replica, and the API keeps serving while the rate limiter, the locks and Dramatiq's
broker carry on on the new master by themselves. Every acknowledged transfer and payment is there, every cent."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from adapters.redis.connect import RedisTopology, async_client
from adapters.redis.locks import RedisLocks
from tests.conftest import new_api_key_for_url
from tests.e2e.conftest import free_port
from tests.e2e.helpers import PROBLEM_JSON, transfer
from tests.e2e.isolated import isolated_stack
from tests.e2e.payflow import balance, funded, pay, settled
from tests.redis_servers import SENTINEL_MASTER, SentinelSet, sentinel_set, wait_for

DB = 2  # PAYMENTS_REDIS_URL gives only the database number (and credentials): its host and port are ignored


@pytest.fixture(scope="module")
def sentinels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelSet]:
    with sentinel_set(Path(tmp_path_factory.mktemp("sentinel"))) as servers:
        yield servers


def _answered(response: httpx.Response, statuses: Counter[int]) -> bool:
    """Count the answer; True if it was acknowledged. Anything else must be a 503 problem saying when to retry."""
    statuses[response.status_code] += 1
    if response.status_code in (201, 202):
        return True
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].split(";")[0] == PROBLEM_JSON, response.headers
    assert response.headers["Retry-After"].isdigit(), response.headers
    return False


def rejoin_as_replica(sentinels: SentinelSet) -> None:
    sentinels.master.args = ["--replicaof", "127.0.0.1", str(sentinels.replica.port)]
    sentinels.master.start()
    wait_for(lambda: sentinels.master.client().info("replication")["master_link_status"] == "up",
             "the old master's sync with the new one")


async def test_the_stack_rides_a_sentinel_failover(
    admin_database_url: str, tmp_path: Path, sentinels: SentinelSet,
) -> None:
    env = {"PAYMENTS_REDIS_SENTINELS": sentinels.sentinels, "PAYMENTS_REDIS_SENTINEL_MASTER": SENTINEL_MASTER,
           "PAYMENTS_REDIS_URL": f"redis://127.0.0.1:1/{DB}",
           # on, so every request goes through Redis; the huge burst keeps a bucket's key ~100 s (checked below)
           "PAYMENTS_RATE_LIMIT_REQUESTS_PER_SECOND": "10000", "PAYMENTS_RATE_LIMIT_BURST": "1000000"}
    assert sentinels.master_port() == sentinels.master.port
    ops = free_port()  # the worker's operations port: its /health/ready checks its Redis and its broker
    with isolated_stack(admin_database_url, tmp_path, api_env=env,
                        worker_env={**env, "PAYMENTS_WORKER_METRICS_PORT": str(ops)}) as stack:
        key = await new_api_key_for_url(stack.database_url)
        async with httpx.AsyncClient(base_url=stack.base_url, headers={"Authorization": f"Bearer {key}"},
                                     timeout=60) as client:
            source, sink = await funded(client, "10000.00"), await funded(client, "0.00")
            transfers: dict[str, list[str]] = {"before": [], "after": []}
            payments: dict[str, list[str]] = {"before": [], "after": []}
            statuses: Counter[int] = Counter()
            phase, stop = "before", asyncio.Event()

            async def transferring() -> None:
                while not stop.is_set():
                    here = phase
                    response = await transfer(client, source, sink, "1.00")
                    if _answered(response, statuses):
                        transfers[here].append(response.json()["id"])

            async def paying() -> None:
                while not stop.is_set():
                    here = phase
                    response = await pay(client, source, "1.00")
                    if _answered(response, statuses):
                        payments[here].append(response.json()["id"])
                    await asyncio.sleep(0.05)  # paced: a steady stream the one worker keeps up with, not a backlog

            async def acknowledged(wanted: int) -> None:
                while len(transfers[phase]) < wanted or len(payments[phase]) < wanted:
                    await asyncio.sleep(0.05)

            load = [asyncio.create_task(each()) for each in (transferring, transferring, paying)]
            try:
                await asyncio.wait_for(acknowledged(5), 60)
                assert (await settled(client, payments["before"][0]))["status"] == "completed"
                sentinels.master.kill()
                await asyncio.to_thread(wait_for, lambda: sentinels.master_port() == sentinels.replica.port,
                                        "the Sentinel promoting the replica")
                # enqueues wait for a replica (PAYMENTS_REDIS_MIN_REPLICAS_ACK defaults to 1 behind Sentinels): the
                # old master comes back as the new one's replica, as an operator (or its supervisor) would bring it
                await asyncio.to_thread(rejoin_as_replica, sentinels)
                phase = "after"  # what is acknowledged from now on went through the new master
                await asyncio.wait_for(acknowledged(10), 120)
            finally:
                stop.set()
                outcomes = await asyncio.gather(*load, return_exceptions=True)
            assert all(outcome is None for outcome in outcomes), outcomes

            acked = [*payments["before"], *payments["after"]]
            finals = [await settled(client, pid, timeout=120) for pid in acked]
            assert {p["status"] for p in finals} == {"completed"}, Counter(p["status"] for p in finals)
            moved = len(transfers["before"]) + len(transfers["after"])
            assert Decimal(await balance(client, sink)) == moved
            assert Decimal(await balance(client, source)) == 10000 - moved - len(acked)
            assert (await client.get("/health/ready")).json()["checks"]["redis"] == "ok"
            worker = (await client.get(f"http://127.0.0.1:{ops}/health/ready")).json()["checks"]
            assert (worker["redis"], worker["broker"]) == ("ok", "ok"), worker

        promoted = sentinels.replica.client(DB)
        # the API's rate limiter and the worker's broker now write to the new master, in the configured database
        assert promoted.keys("ratelimit:{*}"), "no rate-limit bucket on the new master"
        assert promoted.keys("dramatiq:*"), "the broker's queues are not on the new master"
        # the locks' client, built by the same factory, takes a lock there
        client_ = async_client(RedisTopology(url=env["PAYMENTS_REDIS_URL"], sentinels=((
            "127.0.0.1", sentinels.sentinel.port),), sentinel_master=SENTINEL_MASTER), timeout=2.0)
        try:
            locks, name = RedisLocks(client_), secrets.token_hex(4)
            token = await locks.acquire(name, 30)
            # on the master the Sentinel names now: a loaded machine can stall a server past DOWN_AFTER_MS (500 ms),
            # and the Sentinel then fails over again, back to the rejoined old master (seen once in CI)
            nodes = {server.port: server for server in (sentinels.master, sentinels.replica)}
            assert token is not None and nodes[sentinels.master_port()].client(DB).get(locks.key(name)) == token
            assert await locks.release(name, token)
        finally:
            await client_.aclose()

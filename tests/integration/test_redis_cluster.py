"""Locks, rate limits, metrics and the readiness probe on a real three-node Redis Cluster, built by the one client
factory; one node killed and restarted under load: its keys fail cleanly (`Unavailable`, or the rate limiter
letting the request through), the other nodes' keys carry on, and everything works again once it rejoins."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from adapters.redis.connect import AsyncRedis, RedisTopology, async_client
from adapters.redis.health import ping_redis
from adapters.redis.locks import RedisLocks
from adapters.redis.metrics import RedisMetrics
from adapters.redis.rate_limit import RedisRateLimiter
from core.errors import Unavailable
from core.events import OutboxMessage
from tests.redis_servers import Cluster, restart, wait_for

NAMES = [f"account-{n}" for n in range(24)]  # spread over the three nodes' slots


@pytest.fixture
def cluster(redis_cluster_nodes: Cluster) -> Cluster:
    return redis_cluster_nodes


@pytest.fixture
async def client(cluster: Cluster) -> AsyncIterator[AsyncRedis]:
    wait_for(cluster.healthy, "a healthy cluster")  # a test that failed mid-restart leaves it rejoining
    made = async_client(RedisTopology(url=cluster.seed_url, cluster=True), timeout=1.0)
    assert isinstance(made, aioredis.RedisCluster)
    yield made
    await made.aclose()


async def taken_and_released(locks: RedisLocks, name: str) -> None:
    while (token := await locks.acquire(name, 5)) is None:
        await asyncio.sleep(0.05)
    assert await locks.release(name, token)


async def probe_fails(client: AsyncRedis) -> None:
    """Return once the readiness probe raises (it does within the cluster's node timeout of a node's death)."""
    while True:
        try:
            await ping_redis(client)
        except Exception:  # any failure: the probe reports it, and /health/ready answers 503
            return
        await asyncio.sleep(0.05)


async def test_the_adapters_run_on_a_cluster(client: AsyncRedis, cluster: Cluster) -> None:
    await ping_redis(client)
    locks = RedisLocks(client, prefix=f"test:lock:{secrets.token_hex(4)}:")
    token = await locks.acquire("job", 30)
    assert token is not None and await locks.acquire("job", 30) is None
    assert await locks.extend("job", token, 30) and await locks.release("job", token)
    limiter = RedisRateLimiter(client, rate=1, burst=2)
    key = secrets.token_hex(4)
    assert [await limiter.retry_after(key) > 0 for _ in range(3)] == [False, False, True]
    # a pipeline of several keys: one slot, thanks to the prefix's hash tag
    metrics = RedisMetrics(client, prefix=f"test:{{metrics-{secrets.token_hex(4)}}}:")
    event = OutboxMessage(id=uuid.uuid4(), tenant_id=uuid.uuid4(), topic="payment.completed",
                          aggregate_id=uuid.uuid4(), payload={"payment_type": "external_payment"},
                          correlation_id=None, created_at=datetime.now(UTC))
    await metrics.published([event, event])
    await metrics.provider_call("stripe", "charge", "succeeded", 0.02, breaker="closed")
    await metrics.aclose()  # written behind: now
    families = {family.name: family for family in await metrics.families(["stripe"])}
    assert [s.value for s in families["payments"].samples if s.name == "payments_total"] == [2.0]
    assert [s.value for s in families["provider_calls"].samples if s.name == "provider_calls_total"] == [1.0]


async def test_a_node_restarted_under_load(client: AsyncRedis, cluster: Cluster) -> None:
    """While one node is down, operations on its slots raise `Unavailable` (never anything else) and the rate
    limiter lets requests through; the other nodes keep serving; the readiness probe fails until it is back."""
    prefix = f"test:lock:{secrets.token_hex(4)}:"
    locks = RedisLocks(client, prefix=prefix)
    limiter = RedisRateLimiter(client, rate=1000, burst=1000)
    victim = cluster.node_for(locks.key(NAMES[0]))
    on_victim = {name for name in NAMES if cluster.node_for(locks.key(name)) is victim}
    outcomes: Counter[tuple[str, bool, str]] = Counter()  # (phase, on the victim, outcome)
    phase = "before"
    stop = asyncio.Event()

    async def work(name: str) -> None:
        while not stop.is_set():
            here = phase
            try:
                token = await locks.acquire(name, 5)
                # None: an earlier SET that timed out on the client applied after all (its key expires)
                outcome = "ok" if token is not None and await locks.release(name, token) else "held"
            except Unavailable:
                outcome = "unavailable"
            assert await limiter.retry_after(name) == 0.0  # allowed, or let through while its node is down
            outcomes[here, name in on_victim, outcome] += 1
            await asyncio.sleep(0.01)

    async def seen(wanted: tuple[str, bool, str], count: int = 3) -> None:
        while outcomes[wanted] < count:
            await asyncio.sleep(0.05)

    workers = [asyncio.create_task(work(name)) for name in NAMES]
    try:
        await asyncio.wait_for(seen(("before", True, "ok")), 60)
        victim.kill()
        phase = "down"
        await asyncio.wait_for(asyncio.gather(seen(("down", True, "unavailable")), seen(("down", False, "ok"))), 60)
        await asyncio.wait_for(probe_fails(client), 60)  # /health/ready reports Redis failed (503)
        restart(victim)
        wait_for(cluster.healthy, "the restarted node rejoining")
        phase = "after"
        await asyncio.wait_for(asyncio.gather(*(seen(("after", on, "ok")) for on in (True, False))), 60)
    finally:
        stop.set()
        results = await asyncio.gather(*workers, return_exceptions=True)
    assert all(result is None for result in results), results  # no error but `Unavailable` escaped
    assert not any(outcome == "unavailable" for (when, on, outcome) in outcomes if not on and when != "down"), outcomes
    await ping_redis(client)
    for name in NAMES:  # every lock works again, wherever its slot is (one a lost reply left set expires first)
        await asyncio.wait_for(taken_and_released(locks, name), 60)

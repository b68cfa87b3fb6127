"""The shared circuit of a provider: one suite over the in-memory fake and Redis (a key with a TTL)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from adapters.memory.circuit import InMemoryCircuit
from adapters.redis.circuit import RedisCircuit

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(params=["memory", "redis"])
async def circuit(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[InMemoryCircuit | RedisCircuit]:
    if request.param == "memory":
        yield InMemoryCircuit()
        return
    client = aioredis.Redis.from_url(redis_url)
    prefix = f"test:breaker:{uuid.uuid4().hex}:"
    try:
        yield RedisCircuit(client, "stripe", prefix=prefix)
    finally:
        await client.delete(f"{prefix}stripe")
        await client.aclose()


async def test_closed_until_tripped_then_open_for_the_time_given(circuit: InMemoryCircuit | RedisCircuit) -> None:
    assert await circuit.open_for() == 0
    await circuit.trip(30)
    assert 25 < await circuit.open_for() <= 30
    await circuit.close()
    assert await circuit.open_for() == 0


async def test_it_closes_by_itself_when_the_time_is_up(circuit: InMemoryCircuit | RedisCircuit) -> None:
    await circuit.trip(0.2)
    assert await circuit.open_for() > 0
    deadline = time.monotonic() + 10
    while await circuit.open_for() > 0:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)


async def test_an_unreachable_redis_reads_closed_and_drops_writes() -> None:
    client = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)  # nothing listens on 1
    circuit = RedisCircuit(client, "stripe")
    try:
        await circuit.trip(30)
        await circuit.close()
        assert await circuit.open_for() == 0
    finally:
        await client.aclose()

"""The `Locks` port: one suite over the in-memory fake, Redis and a Redis Cluster."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from adapters.memory.locks import InMemoryLocks
from adapters.redis.connect import AsyncRedis, RedisTopology, async_client
from adapters.redis.locks import _ACQUIRE, RedisLocks
from core.errors import Unavailable
from tests.fakes import FakeMonotonic
from tests.redis_servers import wait_for

pytestmark = pytest.mark.timeout(30)

LONG = 30.0


class MemoryBackend:
    short_ttl = 5.0

    def __init__(self) -> None:
        self.clock = FakeMonotonic()
        self.locks = InMemoryLocks(self.clock)

    async def wait_expired(self, name: str) -> None:
        self.clock.advance(self.short_ttl + 0.001)


class RedisBackend:
    short_ttl = 0.2

    def __init__(self, client: AsyncRedis) -> None:
        self.client = client
        self.prefix = f"test:lock:{secrets.token_hex(6)}:"
        self.locks = RedisLocks(client, prefix=self.prefix)

    async def wait_expired(self, name: str) -> None:
        async def gone() -> None:
            while await self.client.exists(self.locks.key(name)):
                await asyncio.sleep(0.02)

        await asyncio.wait_for(gone(), 5)


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
async def locks_backend(request: pytest.FixtureRequest) -> AsyncIterator[MemoryBackend | RedisBackend]:
    """A fresh fake with a hand-moved clock, or `RedisLocks` under a prefix of its own on the session's Redis or
    on the session's three-node cluster (through the client the service builds)."""
    if request.param == "memory":
        yield MemoryBackend()
        return
    client: AsyncRedis
    if request.param == "redis":
        client = aioredis.Redis.from_url(request.getfixturevalue("redis_url"))
    else:
        cluster = request.getfixturevalue("redis_cluster_nodes")
        wait_for(cluster.healthy, "a healthy cluster")
        client = async_client(RedisTopology(url=cluster.seed_url, cluster=True), timeout=2.0)
    backend = RedisBackend(client)
    try:
        yield backend
    finally:
        keys = [key async for key in client.scan_iter(match=backend.prefix + "*")]
        for key in keys:  # one by one: on a cluster they live in different slots
            await client.delete(key)
        await client.aclose()


async def test_acquire_returns_a_token_and_the_name_is_then_busy(locks_backend) -> None:
    token = await locks_backend.locks.acquire("job", LONG)
    assert isinstance(token, str) and token
    assert await locks_backend.locks.acquire("job", LONG) is None
    assert await locks_backend.locks.acquire("other-job", LONG) not in {None, token}


async def test_only_the_owner_releases(locks_backend) -> None:
    token = await locks_backend.locks.acquire("job", LONG)
    assert await locks_backend.locks.release("job", "not-the-token") is False
    assert await locks_backend.locks.acquire("job", LONG) is None
    assert await locks_backend.locks.release("job", token) is True
    assert await locks_backend.locks.release("job", token) is False
    again = await locks_backend.locks.acquire("job", LONG)
    assert again is not None and again != token


async def test_releasing_a_free_name_does_nothing(locks_backend) -> None:
    assert await locks_backend.locks.release("never-taken", "token") is False
    assert await locks_backend.locks.extend("never-taken", "token", LONG) is False


async def test_only_the_owner_extends(locks_backend) -> None:
    first_ttl = 3.0
    token = await locks_backend.locks.acquire("job", first_ttl)
    assert await locks_backend.locks.extend("job", "not-the-token", LONG) is False
    assert await locks_backend.locks.extend("job", token, LONG) is True
    # The extension outlives the first ttl: the lock is still held after it.
    if isinstance(locks_backend, MemoryBackend):
        locks_backend.clock.advance(first_ttl * 2)
    else:
        assert await locks_backend.client.pttl(locks_backend.locks.key("job")) > first_ttl * 1000
    assert await locks_backend.locks.acquire("job", LONG) is None
    assert await locks_backend.locks.release("job", token) is True


async def test_a_lock_expires_after_its_ttl(locks_backend) -> None:
    token = await locks_backend.locks.acquire("job", locks_backend.short_ttl)
    assert token is not None
    await locks_backend.wait_expired("job")
    assert await locks_backend.locks.extend("job", token, LONG) is False
    assert await locks_backend.locks.acquire("job", LONG) is not None


async def test_the_old_owner_cannot_touch_a_lock_taken_over_after_expiry(locks_backend) -> None:
    old = await locks_backend.locks.acquire("job", locks_backend.short_ttl)
    await locks_backend.wait_expired("job")
    new = await locks_backend.locks.acquire("job", LONG)
    assert new is not None and new != old
    assert await locks_backend.locks.extend("job", old, LONG) is False
    assert await locks_backend.locks.release("job", old) is False
    assert await locks_backend.locks.acquire("job", LONG) is None
    assert await locks_backend.locks.release("job", new) is True


async def test_concurrent_acquires_give_exactly_one_token(locks_backend) -> None:
    tokens = await asyncio.gather(*(locks_backend.locks.acquire("hot", LONG) for _ in range(50)))
    assert len([token for token in tokens if token is not None]) == 1


async def test_tokens_are_fresh_per_acquire(locks_backend) -> None:
    tokens = set()
    for index in range(20):
        token = await locks_backend.locks.acquire(f"job-{index}", LONG)
        assert token is not None
        tokens.add(token)
    assert len(tokens) == 20


async def test_a_non_positive_ttl_is_refused(locks_backend) -> None:
    with pytest.raises(ValueError):
        await locks_backend.locks.acquire("job", 0)


async def test_redis_down_raises_unavailable() -> None:
    # Nothing listens on port 1; no retries, so the refusal surfaces at once.
    client = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    locks = RedisLocks(client)
    try:
        with pytest.raises(Unavailable):
            await locks.acquire("job", LONG)
        with pytest.raises(Unavailable):
            await locks.extend("job", "token", LONG)
        with pytest.raises(Unavailable):
            await locks.release("job", "token")
    finally:
        await client.aclose()


async def test_redis_keys_carry_the_prefix(redis_url: str) -> None:
    """The key is `prefix{name}`: the name is a hash tag, so on a Redis Cluster a lock is one key in one slot."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    prefix = f"test:lock:{secrets.token_hex(6)}:"
    try:
        token = await RedisLocks(client, prefix=prefix).acquire("job", LONG)
        assert await client.get(prefix + "{job}") == token
        assert 0 < await client.pttl(prefix + "{job}") <= LONG * 1000
    finally:
        await client.delete(prefix + "{job}")
        await client.aclose()


async def test_calls_of_one_turn_each_keep_their_own_answer(locks_backend) -> None:
    """Acquires and releases asked for together (Redis sends them in one pipeline) answer as if asked alone."""
    locks = locks_backend.locks
    held = await locks.acquire("held", LONG)
    mine = await locks.acquire("mine", LONG)
    assert held is not None and mine is not None
    answers = await asyncio.gather(
        locks.acquire("held", LONG), locks.acquire("free", LONG), locks.release("mine", mine),
        locks.release("held", "not-the-token"), locks.release("never-taken", "token"), locks.acquire("free", LONG))
    assert answers[0] is None
    assert (answers[1] is None) != (answers[5] is None)  # one of the two acquires of "free" in the turn wins
    assert list(answers[2:5]) == [True, False, False]
    assert await locks.acquire("mine", LONG) is not None  # released within the turn
    assert await locks.release("held", held)


class CountingRedis(aioredis.Redis):
    """A client that counts its round trips: single commands and pipelines sent."""

    round_trips = 0

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        self.round_trips += 1
        return await super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        pipe = super().pipeline(transaction=transaction, shard_hint=shard_hint)
        execute = pipe.execute

        async def counted(raise_on_error: bool = True) -> Any:
            self.round_trips += 1
            return await execute(raise_on_error=raise_on_error)
        pipe.execute = counted  # type: ignore[method-assign]
        return pipe


async def test_redis_sends_the_calls_of_one_turn_in_one_round_trip(redis_url: str) -> None:
    client = CountingRedis.from_url(redis_url)
    prefix = f"test:lock:{secrets.token_hex(6)}:"
    locks = RedisLocks(client, prefix=prefix)
    try:
        tokens = await asyncio.gather(*(locks.acquire(f"job-{index}", LONG) for index in range(20)))
        assert all(tokens) and client.round_trips == 1
        released = await asyncio.gather(*(locks.release(f"job-{index}", token)
                                          for index, token in enumerate(tokens) if token))
        assert released == [True] * 20 and client.round_trips == 2
        assert await locks.acquire("alone", LONG) and client.round_trips == 3  # a lone call: no pipeline
    finally:
        await client.delete(*[key async for key in client.scan_iter(match=prefix + "*")], prefix)
        await client.aclose()


async def test_a_turn_after_redis_lost_its_scripts_answers_in_order(redis_url: str) -> None:
    """After a restart (no scripts cached) a turn's release of a name and a later acquire of it both work: the
    release runs first, as asked, and no call of the turn is refused for a script Redis no longer has."""
    client = aioredis.Redis.from_url(redis_url)
    prefix = f"test:lock:{secrets.token_hex(6)}:"
    locks = RedisLocks(client, prefix=prefix)
    try:
        first, second = await asyncio.gather(locks.acquire("a", LONG), locks.acquire("b", LONG))
        assert first is not None and second is not None
        await client.script_flush()
        released_a, again_a, released_b = await asyncio.gather(
            locks.release("a", first), locks.acquire("a", LONG), locks.release("b", second))
        assert released_a and again_a is not None and released_b
        await client.script_flush()
        assert await locks.release("a", again_a)  # a lone call loads the script again
    finally:
        await client.delete(*[key async for key in client.scan_iter(match=prefix + "*")], prefix)
        await client.aclose()


async def test_an_acquire_whose_caller_stopped_waiting_leaves_the_name_free(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    prefix = f"test:lock:{secrets.token_hex(6)}:"
    locks = RedisLocks(client, prefix=prefix)
    try:
        before_sent = asyncio.ensure_future(locks.acquire("early", LONG))
        await asyncio.sleep(0)  # asked: its turn is not sent yet
        before_sent.cancel()
        in_flight = [asyncio.ensure_future(locks.acquire(f"late-{index}", LONG)) for index in range(3)]
        await asyncio.sleep(0)
        await asyncio.sleep(0)  # the turn is on its way to Redis
        for task in in_flight:
            task.cancel()
        await asyncio.gather(before_sent, *in_flight, return_exceptions=True)
        for name in ["early", "late-0", "late-1", "late-2"]:
            for _ in range(100):  # a lock taken for a caller that left is released right after its answer
                if not await client.exists(locks.key(name)):
                    break
                await asyncio.sleep(0.01)
            assert await locks.acquire(name, LONG) is not None, name
    finally:
        await client.delete(*[key async for key in client.scan_iter(match=prefix + "*")], prefix)
        await client.aclose()


def test_a_turn_left_behind_by_a_stopped_loop_does_not_hold_up_another_loop(redis_url: str) -> None:
    """Asked on a loop that then stopped before sending its turn, a call must not swallow the calls made on the
    next loop (a test's, a restarted worker's): they go in a turn of their own."""
    first_loop = asyncio.new_event_loop()
    client = aioredis.Redis.from_url(redis_url)
    locks = RedisLocks(client, prefix=f"test:lock:{secrets.token_hex(6)}:")

    async def ask_and_stop() -> asyncio.Future[str | None]:
        return asyncio.ensure_future(locks.acquire("left", LONG))  # the loop stops before its turn is sent

    pending = first_loop.run_until_complete(ask_and_stop())

    async def on_another_loop() -> None:
        try:
            token = await asyncio.wait_for(locks.acquire("next", LONG), 5)
            assert token is not None and await locks.release("next", token)
        finally:
            await client.aclose()

    try:
        asyncio.run(on_another_loop())
    finally:
        pending.cancel()
        first_loop.run_until_complete(asyncio.gather(pending, return_exceptions=True))
        first_loop.close()


async def test_an_acquire_sent_again_finds_its_own_lock_taken_not_busy(redis_url: str) -> None:
    """redis-py sends a whole pipeline again after a lost connection, answers already read included: the acquire
    script answers 1 to the token that already holds the key, so such a retry does not refuse its own lock."""
    client = aioredis.Redis.from_url(redis_url)
    key = f"test:lock:{secrets.token_hex(6)}:{{job}}"
    try:
        assert await client.eval(_ACQUIRE, 1, key, "mine", 30_000) == 1
        assert await client.eval(_ACQUIRE, 1, key, "mine", 30_000) == 1  # the same request, sent again
        assert await client.eval(_ACQUIRE, 1, key, "theirs", 30_000) == 0
        assert await client.get(key) == b"mine" and 0 < await client.pttl(key) <= 30_000
    finally:
        await client.delete(key)
        await client.aclose()


async def test_redis_down_fails_every_call_of_a_turn_with_unavailable() -> None:
    client = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    locks = RedisLocks(client)
    try:
        answers = await asyncio.gather(locks.acquire("a", LONG), locks.release("b", "token"),
                                       locks.acquire("c", LONG), return_exceptions=True)
        assert [type(answer) for answer in answers] == [Unavailable] * 3
    finally:
        await client.aclose()

"""A provider's circuit as every process sees it: one Redis key, present (with a TTL) while the circuit is open."""

from __future__ import annotations

import contextlib
import math

from redis.exceptions import RedisError

from adapters.redis.connect import AsyncRedis

_FAILURES = (RedisError, OSError, TimeoutError)


class RedisCircuit:
    """The shared circuit of one provider (`SharedCircuit`, adapters/providers/breaker.py): `prefix + provider`,
    set with a TTL of the recovery timeout when a process's breaker opens, deleted when one closes it.

    Redis failing is never the provider failing: a read that fails says "closed" (each process's own breaker
    still protects it), a write that fails is dropped."""

    def __init__(self, client: AsyncRedis, provider: str, *, prefix: str = "payments:breaker:open:") -> None:
        self._redis, self._key = client, prefix + provider

    async def open_for(self) -> float:
        try:
            remaining = int(await self._redis.pttl(self._key))
        except _FAILURES:
            return 0.0
        return remaining / 1000 if remaining > 0 else 0.0

    async def trip(self, seconds: float) -> None:
        with contextlib.suppress(*_FAILURES):
            await self._redis.set(self._key, "1", px=max(1, math.ceil(seconds * 1000)))

    async def close(self) -> None:
        with contextlib.suppress(*_FAILURES):
            await self._redis.delete(self._key)

"""The `Locks` port in Redis: SET NX PX with an owner token, compare-and-act Lua scripts to extend and release."""

from __future__ import annotations

import math
import secrets

from redis.exceptions import RedisError

from adapters.redis.connect import AsyncRedis
from core.errors import Unavailable

# KEYS[1] lock; ARGV: token, ttl in ms. Touches the key only while the token still owns it.
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS[1] lock; ARGV: token. Deletes the key only while the token still owns it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# TimeoutError covers asyncio's timeouts (an alias of the builtin since 3.11); OSError covers dropped sockets.
_REDIS_FAILURES = (RedisError, OSError, TimeoutError)


def _milliseconds(ttl_seconds: float) -> int:
    if not ttl_seconds > 0:
        raise ValueError(f"ttl_seconds must be positive, got {ttl_seconds!r}")
    return max(1, math.ceil(ttl_seconds * 1000))


class RedisLocks:
    """Cross-process locks (the `Locks` port) as Redis keys `prefix{name}` holding the owner's random token.

    The name is a hash tag: on a Redis Cluster a lock is one key in one slot, and anything ever kept beside
    it under the same name (a fencing counter, say) would share that slot, as a multi-key script needs.

    Check and act happen in one Lua script, so an owner whose lock expired and was
    taken by someone else can neither extend nor release the new owner's lock.
    """

    def __init__(self, client: AsyncRedis, prefix: str = "payments:lock:") -> None:
        self._client = client
        self._prefix = prefix
        # AsyncScript runs EVALSHA and falls back to loading the script when Redis lost it (NOSCRIPT).
        self._extend = client.register_script(_EXTEND)
        self._release = client.register_script(_RELEASE)

    def key(self, name: str) -> str:
        """The Redis key of lock `name`: `prefix{name}`."""
        return f"{self._prefix}{{{name}}}"

    async def acquire(self, name: str, ttl_seconds: float) -> str | None:
        token = secrets.token_hex(16)
        ttl_ms = _milliseconds(ttl_seconds)
        try:
            taken = await self._client.set(self.key(name), token, nx=True, px=ttl_ms)
        except _REDIS_FAILURES as error:
            raise Unavailable(f"lock store unavailable: {error}") from error
        return token if taken else None

    async def extend(self, name: str, token: str, ttl_seconds: float) -> bool:
        ttl_ms = _milliseconds(ttl_seconds)
        try:
            extended = await self._extend(keys=[self.key(name)], args=[token, ttl_ms])
        except _REDIS_FAILURES as error:
            raise Unavailable(f"lock store unavailable: {error}") from error
        return int(extended) == 1

    async def release(self, name: str, token: str) -> bool:
        try:
            deleted = await self._release(keys=[self.key(name)], args=[token])
        except _REDIS_FAILURES as error:
            raise Unavailable(f"lock store unavailable: {error}") from error
        return int(deleted) == 1

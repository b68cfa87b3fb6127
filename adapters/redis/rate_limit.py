"""A token-bucket rate limiter per API key, atomic in Redis (one Lua call per request)."""

from __future__ import annotations

import time

from loguru import logger
from redis.exceptions import RedisError

from adapters.redis.connect import AsyncRedis

# KEYS[1] bucket; ARGV: rate per second, burst, now in ms. Returns 0 when allowed,
# else the milliseconds until a token is available.
_BUCKET = """
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]) or burst, tonumber(state[2]) or now
tokens = math.min(burst, tokens + (now - at) * rate / 1000)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) * 1000 / rate) end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return wait
"""


class RedisRateLimiter:
    """Allows `rate` requests per second per key with bursts up to `burst`; fails open if Redis is down."""

    def __init__(self, client: AsyncRedis, *, rate: int, burst: int) -> None:
        self._script = client.register_script(_BUCKET)
        self._rate, self._burst = rate, max(burst, 1)

    async def retry_after(self, key: str) -> float:
        """0 if the request may proceed, else the seconds to wait before the next one."""
        try:
            # one key, hash-tagged: its own slot on a Redis Cluster
            wait_ms = await self._script(
                keys=[f"ratelimit:{{{key}}}"], args=[self._rate, self._burst, int(time.time() * 1000)]
            )
        except (RedisError, OSError, TimeoutError) as error:
            logger.warning("rate limiter unavailable, allowing the request: {}", error)
            return 0.0
        return int(wait_ms) / 1000

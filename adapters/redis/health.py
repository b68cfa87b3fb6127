"""Readiness probe of Redis: the server answers a PING."""

from __future__ import annotations

import redis.asyncio as aioredis


async def ping_redis(client: aioredis.Redis) -> None:
    """Raise the client's error if Redis does not answer."""
    await client.ping()

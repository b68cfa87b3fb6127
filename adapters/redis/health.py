"""Readiness probe of Redis in each topology: the master answers a PING (through the Sentinels when they name it);
on a cluster every primary answers and the cluster covers all its slots."""

from __future__ import annotations

import redis.asyncio as aioredis

from adapters.redis.connect import AsyncRedis


class ClusterDown(RuntimeError):
    """The Redis Cluster does not serve every slot (`cluster_state` is not `ok`)."""


async def ping_redis(client: AsyncRedis) -> None:
    """Raise the client's error (or `ClusterDown`) if Redis cannot serve."""
    if isinstance(client, aioredis.RedisCluster):
        await client.ping(target_nodes=aioredis.RedisCluster.PRIMARIES)
        info = await client.cluster_info(target_nodes=aioredis.RedisCluster.RANDOM)
        if info.get("cluster_state") != "ok":
            raise ClusterDown(f"cluster_state is {info.get('cluster_state')!r}")
        return
    await client.ping()

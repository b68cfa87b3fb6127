"""Readiness probe of Redis in each topology: the master answers a PING (through the Sentinels when they name it);
on a cluster every primary answers and every slot is served."""

from __future__ import annotations

import redis.asyncio as aioredis

from adapters.redis.connect import AsyncRedis

SLOTS = 16384


class ClusterDown(RuntimeError):
    """The Redis Cluster does not serve every slot (`cluster_state` is not `ok`, or a node's slots are down)."""


async def ping_redis(client: AsyncRedis) -> None:
    """Raise the client's error (or `ClusterDown`) if Redis cannot serve."""
    if isinstance(client, aioredis.RedisCluster):
        await client.ping(target_nodes=aioredis.RedisCluster.PRIMARIES)
        info = await client.cluster_info(target_nodes=aioredis.RedisCluster.RANDOM)
        # a node that is down takes its slots out even where the cluster stays `ok` (cluster-require-full-coverage
        # no): its keys' operations fail, so this process is not fully ready
        if info.get("cluster_state") != "ok" or int(info.get("cluster_slots_ok", 0)) < SLOTS:
            raise ClusterDown(f"cluster_state {info.get('cluster_state')!r}, "
                              f"{info.get('cluster_slots_ok')} of {SLOTS} slots served")
        return
    await client.ping()

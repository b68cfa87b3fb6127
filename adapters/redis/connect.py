"""The one factory of Redis clients: one Redis, the master named by Sentinels, or a Redis Cluster (async and sync).

Failover is redis-py's own: a Sentinel-managed connection asks the Sentinels for the master each time it
(re)connects, so after a promotion the next command reaches the new master; a cluster client re-reads the slot
map from its nodes when a node stops answering or answers MOVED.
"""

from __future__ import annotations

from typing import Any, TypeAlias
from urllib.parse import urlsplit

import attrs
import redis
import redis.asyncio as aioredis
import redis.asyncio.sentinel as async_sentinel
import redis.retry
import redis.sentinel as sync_sentinel
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialWithJitterBackoff
from redis.connection import parse_url

#: What every Redis adapter accepts: a plain (or Sentinel-managed) client, or a cluster client.
AsyncRedis: TypeAlias = aioredis.Redis | aioredis.RedisCluster
SyncRedis: TypeAlias = redis.Redis | redis.RedisCluster
#: A cluster command whose node is down fails after this many quick retries (redis-py's default, up to 10 s
#: of backoff, would hold a request that long); each retry re-reads the slot map, which also follows MOVED.
CLUSTER_RETRIES, CLUSTER_BACKOFF = 2, ExponentialWithJitterBackoff(base=0.05, cap=0.25)
SENTINEL_TIMEOUT = 2.0  # seconds for a Sentinel's answer when the client itself has no socket timeout


def parse_sentinels(text: str) -> tuple[tuple[str, int], ...]:
    """`host:port,host:port` → ((host, port), …); a missing port is Sentinel's 26379. `ValueError` if malformed."""
    sentinels = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        host, colon, port = item.rpartition(":")
        if not colon:
            host, port = item, "26379"
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"expected host:port[,host:port…], not {item!r}")
        sentinels.append((host.strip("[]"), int(port)))
    return tuple(sentinels)


@attrs.frozen(kw_only=True)
class RedisTopology:
    """Where Redis is. `url`: the server (standalone), a seed node (cluster), or only the database number and
    credentials (Sentinel; may be empty)."""

    url: str
    sentinels: tuple[tuple[str, int], ...] = ()
    sentinel_master: str = ""
    cluster: bool = False

    def __attrs_post_init__(self) -> None:
        if self.cluster and self.url and (parse_url(self.url).get("db") or 0) != 0:  # type: ignore[no-untyped-call]
            raise ValueError("a Redis Cluster has only database 0: PAYMENTS_REDIS_URL must end in /0 or no path")

    @property
    def mode(self) -> str:
        return "cluster" if self.cluster else "sentinel" if self.sentinels else "standalone"

    def master_kwargs(self) -> dict[str, Any]:
        """Database, credentials and TLS options (`rediss://…?ssl_ca_certs=…`) of the master from `url`; its host
        and port come from the Sentinels."""
        if not self.url:
            return {}
        parsed: dict[str, Any] = parse_url(self.url)  # type: ignore[no-untyped-call]
        kwargs = {key: value for key, value in parsed.items()
                  if value is not None and (key in ("db", "username", "password") or key.startswith("ssl_"))}
        if urlsplit(self.url).scheme == "rediss":
            kwargs["ssl"] = True
        return kwargs


def async_client(topology: RedisTopology, *, timeout: float) -> AsyncRedis:
    """The asyncio client for `topology`; connections open lazily, so a Redis that is down fails commands, not this."""
    timeouts: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    if topology.cluster:
        return aioredis.RedisCluster.from_url(topology.url, retry=AsyncRetry(CLUSTER_BACKOFF, CLUSTER_RETRIES),
                                              **timeouts)
    if topology.sentinels:
        sentinel = async_sentinel.Sentinel(list(topology.sentinels), sentinel_kwargs=dict(timeouts))
        master: aioredis.Redis = sentinel.master_for(topology.sentinel_master, **timeouts,
                                                     **topology.master_kwargs())
        return master
    return aioredis.Redis.from_url(topology.url, **timeouts)


def sync_client(topology: RedisTopology, *, timeout: float | None = None) -> SyncRedis:
    """The blocking client for `topology` (Dramatiq's broker is blocking). `timeout=None`: no socket timeout,
    as Dramatiq's own client has none (its consumers block on their fetches)."""
    timeouts: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    if topology.cluster:
        return redis.RedisCluster.from_url(topology.url, retry=redis.retry.Retry(CLUSTER_BACKOFF, CLUSTER_RETRIES),
                                           **timeouts)
    if topology.sentinels:
        asking = timeout or SENTINEL_TIMEOUT  # a Sentinel that does not answer must not hold the broker forever
        sentinel = sync_sentinel.Sentinel(list(topology.sentinels), sentinel_kwargs={
            "socket_timeout": asking, "socket_connect_timeout": asking})
        blocking: redis.Redis = sentinel.master_for(topology.sentinel_master, **timeouts,
                                                    **topology.master_kwargs())
        return blocking
    return redis.Redis.from_url(topology.url, **timeouts)

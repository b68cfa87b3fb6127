"""How every process reaches Redis (one server, a master through Sentinels, or a Cluster) and the Dramatiq broker
(PAYMENTS_REDIS_* and PAYMENTS_BROKER_URL); part of `app.settings`."""

from __future__ import annotations

import attrs

from adapters.redis.connect import RedisTopology, parse_sentinels
from app.settings_fields import PORT as _PORT
from app.settings_fields import duration as _duration


def _sentinels(_: object, __: object, value: str) -> None:
    parse_sentinels(value)


@attrs.frozen(kw_only=True)
class RedisSettings:
    """One Redis (`url`, or `host`/`port`/`db`), a master found through Sentinels, or a Redis Cluster.

    With `sentinels`, `url` (optional) gives only the database number and credentials; with `cluster`,
    `url` names a seed node (`adapters.redis.connect` builds the client for each)."""

    url: str = ""
    host: str = ""
    port: int = attrs.field(default=6379, validator=_PORT)
    db: int = 0
    sentinels: str = attrs.field(default="", validator=_sentinels)  # host:port,host:port,...
    sentinel_master: str = ""  # the service name the Sentinels monitor
    cluster: bool = False
    # replicas that must hold an enqueued Dramatiq message before the enqueue counts (Redis `WAIT`); -1: 1 with
    # Sentinels (a failover must not lose what the relay marked published), else 0
    min_replicas_ack: int = attrs.field(default=-1, validator=attrs.validators.ge(-1))
    replica_ack_timeout: float = _duration(1.0, positive=True)  # how long an enqueue waits for them

    def __attrs_post_init__(self) -> None:
        if bool(self.sentinels) != bool(self.sentinel_master):
            raise ValueError("PAYMENTS_REDIS_SENTINELS and PAYMENTS_REDIS_SENTINEL_MASTER go together: "
                             "set both (the Sentinels, and the name of the master they monitor) or neither")
        if self.sentinels and self.cluster:
            raise ValueError("PAYMENTS_REDIS_CLUSTER and PAYMENTS_REDIS_SENTINELS exclude each other: a Redis "
                             "Cluster fails over by itself")
        if self.cluster and not self.dsn():
            raise ValueError("PAYMENTS_REDIS_CLUSTER needs PAYMENTS_REDIS_URL naming one of the cluster's nodes")
        self.topology(self.dsn())  # what the topology itself refuses (a cluster database other than 0)

    def dsn(self) -> str:
        """The configured URL, or one built from host/port/db; "" means embedded (or, with Sentinels, db 0
        without credentials)."""
        if self.url or not self.host:
            return self.url
        return f"redis://{self.host}:{self.port}/{self.db}"

    def replicas_to_ack(self) -> int:
        """`min_replicas_ack`, or its default: 1 behind Sentinels (there is a replica to promote), else 0."""
        if self.min_replicas_ack >= 0:
            return self.min_replicas_ack
        return 1 if self.sentinels else 0

    def topology(self, url: str) -> RedisTopology:
        """How to reach Redis, `url` being the resolved `dsn()` (the embedded server's when that is empty)."""
        return RedisTopology(url=url, sentinels=parse_sentinels(self.sentinels), sentinel_master=self.sentinel_master,
                             cluster=self.cluster)


#: The schemes PAYMENTS_BROKER_URL takes: Dramatiq's Redis broker or its RabbitMQ one.
BROKER_SCHEMES = ("redis", "rediss", "unix", "amqp", "amqps")


def _broker_url(_: object, __: object, value: str) -> None:
    scheme = value.partition("://")[0] if "://" in value else ""
    if value and scheme not in BROKER_SCHEMES:
        given = f"a {scheme}:// URL" if scheme else "a value without a scheme"  # not the URL: it may hold a password
        raise ValueError(f"expected a redis://, rediss://, amqp:// or amqps:// URL (or nothing: the Redis URL), "
                         f"not {given}")


@attrs.frozen(kw_only=True)
class BrokerSettings:
    """The Dramatiq broker: Redis (`redis://…`) or RabbitMQ (`amqp://…`); empty means the Redis of
    PAYMENTS_REDIS_URL."""

    url: str = attrs.field(default="", validator=_broker_url)

    def dsn(self, redis_url: str) -> str:
        return self.url or redis_url

"""Redis through Sentinel or as a Cluster: the settings, what they refuse, and the clients the one factory builds
(no server is contacted: connections open lazily)."""

from __future__ import annotations

import os

import pytest
import redis
import redis.asyncio as aioredis
from redis.asyncio.sentinel import SentinelConnectionPool as AsyncSentinelPool
from redis.sentinel import SentinelConnectionPool

from adapters.dramatiq.broker import ReplicatedRedisBroker
from adapters.redis.connect import RedisTopology, async_client, parse_sentinels, sync_client
from app.bootstrap import broker as make_broker
from app.bootstrap import resolve_endpoints
from app.configuration import load_settings
from app.settings import SettingsError
from payments.cli import main

SENTINEL = {"PAYMENTS_REDIS_SENTINELS": "10.0.0.1:26379, 10.0.0.2:26380", "PAYMENTS_REDIS_SENTINEL_MASTER": "main"}


@pytest.mark.parametrize(("text", "parsed"), [
    ("", ()), ("a:1", (("a", 1),)), ("a:1,b:2", (("a", 1), ("b", 2))), (" a , b:2 ,", (("a", 26379), ("b", 2))),
    ("[::1]:26379", (("::1", 26379),)),
])
def test_sentinel_addresses_parse(text: str, parsed: tuple[tuple[str, int], ...]) -> None:
    assert parse_sentinels(text) == parsed


@pytest.mark.parametrize(("env", "named"), [
    ({"PAYMENTS_REDIS_SENTINELS": "a:port"}, "PAYMENTS_REDIS_SENTINELS"),
    ({"PAYMENTS_REDIS_SENTINELS": "a:70000", "PAYMENTS_REDIS_SENTINEL_MASTER": "m"}, "PAYMENTS_REDIS_SENTINELS"),
    ({"PAYMENTS_REDIS_SENTINELS": "a:1"}, "PAYMENTS_REDIS_SENTINEL_MASTER"),
    ({"PAYMENTS_REDIS_SENTINEL_MASTER": "m"}, "PAYMENTS_REDIS_SENTINELS"),
    ({**SENTINEL, "PAYMENTS_REDIS_CLUSTER": "true", "PAYMENTS_BROKER_URL": "amqp://h/v"}, "exclude each other"),
    ({"PAYMENTS_REDIS_CLUSTER": "true", "PAYMENTS_BROKER_URL": "amqp://h/v"}, "naming one of the cluster's nodes"),
    ({"PAYMENTS_REDIS_CLUSTER": "yes please"}, "PAYMENTS_REDIS_CLUSTER"),
    ({"PAYMENTS_REDIS_CLUSTER": "1", "PAYMENTS_REDIS_URL": "redis://n:7000/3", "PAYMENTS_BROKER_URL": "amqp://h/v"},
     "only database 0"),
])
def test_inconsistent_settings_are_refused_naming_what_to_set(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        load_settings(env)


@pytest.mark.parametrize("broker", ["", "redis://elsewhere:6379/0", "rediss://elsewhere:6379/0", "unix:///r.sock"])
def test_a_cluster_refuses_the_redis_broker_and_says_to_use_rabbitmq(broker: str) -> None:
    env = {"PAYMENTS_REDIS_CLUSTER": "true", "PAYMENTS_REDIS_URL": "redis://node1:7000/0"}
    with pytest.raises(SettingsError, match=r"PAYMENTS_BROKER_URL=amqp://"):
        load_settings({**env, "PAYMENTS_BROKER_URL": broker} if broker else env)
    cluster = load_settings({**env, "PAYMENTS_BROKER_URL": "amqp://guest:guest@rabbit:5672/payments"}).redis
    assert cluster.topology(cluster.dsn()).mode == "cluster"


def test_serve_refuses_to_start_on_a_cluster_with_the_redis_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("PAYMENTS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PAYMENTS_REDIS_CLUSTER", "true")
    monkeypatch.setenv("PAYMENTS_REDIS_URL", "redis://127.0.0.1:1/0")
    with pytest.raises(SystemExit) as refused:
        main(["serve"])
    assert "invalid configuration" in str(refused.value.code) and "PAYMENTS_BROKER_URL=amqp://" in str(
        refused.value.code)


def test_with_sentinels_the_url_gives_only_the_database_and_credentials() -> None:
    settings = load_settings({**SENTINEL, "PAYMENTS_REDIS_URL": "redis://user:secret@ignored:1/3"}).redis
    topology = settings.topology(settings.dsn())
    assert topology.mode == "sentinel" and topology.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26380))
    client = async_client(topology, timeout=1.0)
    assert isinstance(client, aioredis.Redis) and isinstance(client.connection_pool, AsyncSentinelPool)
    assert client.connection_pool.service_name == "main"
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["db"], kwargs["username"], kwargs["password"]) == (3, "user", "secret")
    assert "host" not in kwargs  # the master's address is asked of the Sentinels on each (re)connection
    blocking = sync_client(topology)
    assert isinstance(blocking, redis.Redis) and isinstance(blocking.connection_pool, SentinelConnectionPool)
    tls = RedisTopology(url="rediss://h/0", sentinels=(("s", 1),), sentinel_master="m")
    assert async_client(tls, timeout=1.0).connection_pool.connection_class.__name__ == "SentinelManagedSSLConnection"
    # the URL's TLS options reach the master's connections (the Sentinels themselves are asked in plain text)
    verified = RedisTopology(url="rediss://h/0?ssl_ca_certs=/etc/ca.pem&ssl_cert_reqs=required",
                             sentinels=(("s", 1),), sentinel_master="m")
    for pool in (async_client(verified, timeout=1.0).connection_pool, sync_client(verified).connection_pool):
        assert pool.connection_class.__name__ == "SentinelManagedSSLConnection"
        assert (pool.connection_kwargs["ssl_ca_certs"], pool.connection_kwargs["ssl_cert_reqs"]) == (
            "/etc/ca.pem", "required")


def test_with_sentinels_no_embedded_redis_is_started_and_the_broker_follows_the_master() -> None:
    settings = load_settings({**SENTINEL, "PAYMENTS_DATABASE_URL": "postgresql://u@db:5432/payments"})
    endpoints = resolve_endpoints(settings)
    assert endpoints.redis_url == "" and endpoints.embedded == []
    made = make_broker(settings, endpoints.redis_url)
    try:
        assert isinstance(made.client.connection_pool, SentinelConnectionPool)
        assert made.client.connection_pool.service_name == "main"
    finally:
        made.close()


def test_a_standalone_url_and_a_cluster_seed() -> None:
    plain = async_client(RedisTopology(url="redis://h:6380/4"), timeout=1.0)
    assert isinstance(plain, aioredis.Redis) and plain.connection_pool.connection_kwargs["db"] == 4
    seed = async_client(RedisTopology(url="redis://node1:7000/0", cluster=True), timeout=1.0)
    assert isinstance(seed, aioredis.RedisCluster)


@pytest.mark.parametrize(("env", "replicas"), [
    (SENTINEL, 1),  # behind Sentinels an enqueue waits for one replica by default
    ({**SENTINEL, "PAYMENTS_REDIS_MIN_REPLICAS_ACK": "0"}, 0),
    ({**SENTINEL, "PAYMENTS_REDIS_MIN_REPLICAS_ACK": "2"}, 2),
    ({"PAYMENTS_REDIS_URL": "redis://h:6380/4"}, 0),  # one Redis: no replica to wait for
    ({"PAYMENTS_REDIS_URL": "redis://h:6380/4", "PAYMENTS_REDIS_MIN_REPLICAS_ACK": "1"}, 1),
    # a broker on a Redis of its own waits only when told to (the Sentinels' replicas are not its replicas)
    ({**SENTINEL, "PAYMENTS_BROKER_URL": "redis://q:6379/0"}, 0),
    ({**SENTINEL, "PAYMENTS_BROKER_URL": "redis://q:6379/0", "PAYMENTS_REDIS_MIN_REPLICAS_ACK": "1"}, 1),
])
def test_the_broker_waits_for_the_configured_replicas(env: dict[str, str], replicas: int) -> None:
    settings = load_settings({**env, "PAYMENTS_DATABASE_URL": "postgresql://u@db:5432/payments",
                              "PAYMENTS_REDIS_REPLICA_ACK_TIMEOUT": "0.25"})
    made = make_broker(settings, settings.redis.dsn())
    try:
        assert isinstance(made, ReplicatedRedisBroker)
        assert (made.min_replicas, made.timeout_ms) == (replicas, 250)
    finally:
        made.close()


def test_a_negative_replica_count_is_refused() -> None:
    with pytest.raises(SettingsError, match="PAYMENTS_REDIS_MIN_REPLICAS_ACK"):
        load_settings({"PAYMENTS_REDIS_MIN_REPLICAS_ACK": "-2"})

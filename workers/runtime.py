"""The adapters the async actors use, built once on the Dramatiq event loop they all run on."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg
import attrs
import redis.asyncio as aioredis
from dramatiq.brokers.redis import RedisBroker

from adapters.dramatiq.broker import DramatiqTaskQueue
from adapters.postgres.pool import create_pool
from adapters.postgres.uow import PgUnitOfWork
from adapters.providers.metered import MeteredProvider
from adapters.redis.locks import RedisLocks
from adapters.redis.metrics import RedisMetrics
from adapters.webhook_sender import HttpxWebhookSender
from app.settings import Settings
from core.clock import SystemClock
from core.errors import Unavailable
from core.payments import PROVIDERS
from core.providers import PaymentProvider
from core.usecases.processing import Deps
from core.webhooks import DeliveryPolicy
from core.work import RetryPolicy


@attrs.define
class Runtime:
    """Live adapters of the worker's actors (one pool and client set per process)."""

    deps: Deps
    queue: DramatiqTaskQueue
    pool: asyncpg.Pool
    redis: aioredis.Redis
    metrics: RedisMetrics
    providers: dict[str, Any]
    webhooks: HttpxWebhookSender
    webhook_policy: DeliveryPolicy
    webhook_slots: asyncio.Semaphore

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.webhooks.aclose()
        for provider in self.providers.values():
            with contextlib.suppress(Exception):
                await provider.aclose()
        with contextlib.suppress(Exception):
            await self.pool.close()
        with contextlib.suppress(Exception):
            await self.redis.aclose()


@attrs.define
class _Config:
    settings: Settings
    database_url: str
    redis_url: str
    broker: RedisBroker


_config: _Config | None = None
_runtime: Runtime | None = None
_building: asyncio.Lock | None = None


def configure(settings: Settings, database_url: str, redis_url: str, broker: RedisBroker) -> None:
    """Called by the worker process before its consumers start."""
    global _config
    _config = _Config(settings, database_url, redis_url, broker)


def policy(settings: Settings) -> RetryPolicy:
    p = settings.payment
    return RetryPolicy(max_attempts=p.max_retries, min_backoff=p.min_backoff, max_backoff=p.max_backoff,
                       provider_timeout=p.provider_timeout, lock_ttl=p.lock_ttl)


def build_providers(settings: Settings) -> dict[str, Any]:
    """Each provider's HTTP client behind its own failure-rate circuit breaker."""
    from adapters.providers.breaker import BreakerProvider
    from adapters.providers.paypal import PayPalProvider
    from adapters.providers.stripe import StripeProvider

    timeout = settings.payment.provider_timeout
    clients: dict[str, PaymentProvider] = {
        "stripe": StripeProvider(settings.provider_url("stripe"), settings.providers.stripe_api_key, timeout=timeout),
        "paypal": PayPalProvider(settings.provider_url("paypal"), settings.providers.paypal_api_key, timeout=timeout),
    }
    p = settings.payment
    return {name: BreakerProvider(clients[name], window=p.breaker_window, failure_rate=p.breaker_failure_rate,
                                  recovery_timeout=p.breaker_recovery) for name in PROVIDERS}


async def runtime() -> Runtime:
    """The process's runtime, built on first use on the running (Dramatiq) event loop."""
    global _runtime, _building
    if _runtime is not None:
        return _runtime
    if _config is None:
        raise RuntimeError("workers.runtime.configure() was not called")
    _building = _building or asyncio.Lock()
    async with _building:
        if _runtime is None:
            _runtime = await _build(_config)
    return _runtime


async def _build(config: _Config) -> Runtime:
    settings = config.settings
    pool = await create_pool(config.database_url, min_size=0, max_size=max(4, settings.worker.concurrency + 2),
                             command_timeout=settings.database.statement_timeout)
    client = aioredis.Redis.from_url(config.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
    metrics = RedisMetrics(client)
    providers = {name: MeteredProvider(each, metrics) for name, each in build_providers(settings).items()}

    def uow(*, read_only: bool = False) -> PgUnitOfWork:
        return PgUnitOfWork(pool, read_only=read_only, acquire_timeout=settings.database.acquire_timeout)

    def provider(name: str) -> PaymentProvider:
        if name not in providers:
            raise Unavailable(f"no provider named {name!r} is configured")
        found: PaymentProvider = providers[name]
        return found

    deps = Deps(uow=uow, providers=provider, locks=RedisLocks(client), clock=SystemClock(), policy=policy(settings))
    webhooks = HttpxWebhookSender(allow_private=settings.webhooks.allow_private_urls)
    return Runtime(deps=deps, queue=DramatiqTaskQueue(config.broker), pool=pool, redis=client, providers=providers,
                   metrics=metrics,
                   webhooks=webhooks, webhook_policy=settings.webhooks.policy(),
                   webhook_slots=asyncio.Semaphore(settings.webhooks.concurrency))


async def close() -> None:
    """Release the runtime's connections (on the loop that made them)."""
    global _runtime
    if _runtime is not None:
        await _runtime.close()
        _runtime = None

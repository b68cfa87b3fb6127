"""What the worker's actors and loops share: the process's `Services`, built once on the loop they run on."""

from __future__ import annotations

import asyncio

import attrs
import dramatiq

from adapters.dramatiq.observe import WORKER_SHARED_UNITS
from app.bootstrap import Services, bootstrap
from app.settings import Settings
from core.usecases.shared_attempts import shared_attempts
from core.usecases.worker_deps import Deps
from core.webhooks import DeliveryPolicy
from core.work import RetryPolicy


def retry_policy(settings: Settings) -> RetryPolicy:
    """Attempts and backoff of provider calls, and the longest wait for an open breaker, from `PAYMENTS_PAYMENT_*`."""
    p = settings.payment
    return RetryPolicy(max_attempts=p.max_retries, min_backoff=p.min_backoff, max_backoff=p.max_backoff,
                       provider_timeout=p.provider_timeout, lock_ttl=p.lock_ttl, breaker_max_wait=p.breaker_max_wait)


@attrs.define
class Ready:
    """The services and the use cases' dependencies, once built."""

    services: Services
    deps: Deps
    webhook_policy: DeliveryPolicy


@attrs.define
class WorkerContext:
    """Builds the process's `Services` on first use, on the Dramatiq event loop every actor and loop runs on.

    asyncpg pools and Redis clients belong to the loop that made them, and that loop exists only once the
    Dramatiq worker has started; so the composition root is called from there, once (a lock makes
    concurrent first users wait for the same build).
    """

    settings: Settings
    database_url: str
    redis_url: str
    broker: dramatiq.Broker
    _ready: Ready | None = None
    _building: asyncio.Lock | None = None

    async def get(self) -> Ready:
        if self._ready is not None:
            return self._ready
        self._building = self._building or asyncio.Lock()
        async with self._building:
            if self._ready is None:
                services = await bootstrap(self.settings, self.database_url, self.redis_url, role="worker",
                                           broker=self.broker)
                shared = shared_attempts(services.uow_factory,
                                         observe=lambda step, size: WORKER_SHARED_UNITS.labels(step).observe(size))
                deps = Deps(uow_factory=services.uow_factory, providers=services.provider, locks=services.locks,
                            clock=services.clock, policy=retry_policy(self.settings), shared=shared)
                self._ready = Ready(services=services, deps=deps, webhook_policy=self.settings.webhooks.policy())
        return self._ready

    async def aclose(self) -> None:
        """Close the services (on their loop), if they were built."""
        if self._ready is not None:
            ready, self._ready = self._ready, None
            await ready.services.aclose()

"""What the worker's use cases share: their ports, the outcome of a delivery, and bounded provider calls."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import attrs

from core.ports import Clock, Locks, UnitOfWorkFactory
from core.providers import CircuitOpen, PaymentProvider, ProviderError, ProviderResult, ProviderUnavailable
from core.work import RetryPolicy

DONE, RETRY, SKIPPED, BUSY, LATE = "done", "retry", "skipped", "busy", "late"
#: The provider clients time out first (their own timeout is `provider_timeout`), so that the
#: failure is theirs, classified and counted by the breaker; this outer bound is a backstop.
_MARGIN = 1.0
T = TypeVar("T")


@attrs.frozen
class Outcome:
    """What became of one delivery: `done`, `retry` (again in `retry_in` seconds), `skipped`, `busy`,
    or `late` (the provider charged a payment that had already failed)."""

    result: str
    status: str | None = None
    retry_in: float | None = None


@attrs.frozen(kw_only=True)
class Deps:
    """The ports a worker's use cases need."""

    uow: UnitOfWorkFactory
    providers: Callable[[str], PaymentProvider]
    locks: Locks
    clock: Clock
    policy: RetryPolicy


async def bounded(action: Callable[[], Awaitable[T]], policy: RetryPolicy) -> tuple[T | None, ProviderError | None]:
    """The action's result, or the provider error it ended with; never longer than the provider timeout."""
    try:
        async with asyncio.timeout(policy.provider_timeout + _MARGIN):
            return await action(), None
    except ProviderError as error:
        return None, error
    except TimeoutError:
        return None, ProviderUnavailable(f"the provider did not answer within {policy.provider_timeout:g}s")


async def call(
    action: Callable[[], Awaitable[ProviderResult | None]], policy: RetryPolicy
) -> tuple[str | None, ProviderError | None]:
    """A charge, refund or lookup: the provider's reference (None from a lookup that found nothing), or the
    error it ended with (a timeout is transient)."""
    result, error = await bounded(action, policy)
    return (result.reference if result is not None else None), error


def breaker_wait(error: ProviderUnavailable, deps: Deps) -> float:
    """After an open breaker's refusal: until it lets a call through, and at least as long as that
    call (its probe) may take, so that a half-open breaker is not asked again before it has its answer."""
    if not isinstance(error, CircuitOpen):
        return 0.0
    return max(error.retry_after, deps.policy.provider_timeout)

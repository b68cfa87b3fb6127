"""Calling a provider from a worker: bounded in time, its failure returned as a value, and when a transient
failure is tried again."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from core.providers import CircuitOpen, ProviderError, ProviderResult, ProviderUnavailable
from core.work import RetryPolicy

#: The provider clients time out first (their own timeout is `provider_timeout`), so that the
#: failure is theirs, classified and counted by the breaker; this outer bound is a backstop.
_MARGIN = 1.0
T = TypeVar("T")


class Unconfirmed(ProviderUnavailable):
    """The attempts ran out after an ambiguous failure and the provider could not be asked whether it
    acted: the payment or refund may not be failed yet."""


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


def breaker_wait(error: ProviderUnavailable, policy: RetryPolicy) -> float:
    """After an open breaker's refusal: until it lets a call through, and at least as long as that
    call (its probe) may take, so that a half-open breaker is not asked again before it has its answer."""
    if not isinstance(error, CircuitOpen):
        return 0.0
    return max(error.retry_after, policy.provider_timeout)


def retry_wait(error: ProviderUnavailable, attempts: int, policy: RetryPolicy) -> float | None:
    """Seconds until the next attempt once attempt number `attempts` failed transiently, or None when it was
    the last. An unconfirmed outcome is never the last: it waits the longest backoff and asks again. An open
    breaker's refusal waits at least until the breaker lets a call through, so attempts are not burned faster
    than it recovers."""
    if isinstance(error, Unconfirmed):
        return policy.max_backoff
    if attempts >= policy.max_attempts:
        return None
    return max(policy.backoff(attempts), breaker_wait(error, policy))

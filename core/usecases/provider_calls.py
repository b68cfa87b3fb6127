"""Calling a provider from a worker: bounded in time, its failure returned as a value, and what a transient
failure leads to (`judge`): a breaker's refusal is not an attempt and waits for the breaker, at most
`RetryPolicy.breaker_max_wait`; a failure that reached the provider is an attempt, retried with backoff."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

import attrs

from core.payments import FailureCode
from core.providers import CircuitOpen, ProviderError, ProviderResult, ProviderUnavailable
from core.work import RetryPolicy

#: The provider clients time out first (their own timeout is `provider_timeout`), so that the
#: failure is theirs, classified and counted by the breaker; this outer bound is a backstop.
_MARGIN = 1.0
T = TypeVar("T")
#: Why the provider is only asked, not charged (or refunded) again.
OUTCOME_UNKNOWN = "the outcome of an earlier attempt is unknown"


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


def breaker_wait(error: CircuitOpen, policy: RetryPolicy) -> float:
    """After an open breaker's refusal: until it lets a call through, and at least as long as that
    call (its probe) may take, so that a half-open breaker is not asked again before it has its answer."""
    return max(error.retry_after, policy.provider_timeout)


def retry_wait(error: ProviderUnavailable, attempts: int, policy: RetryPolicy) -> float | None:
    """Seconds until the next attempt once attempt number `attempts` failed transiently, or None when it was
    the last. An unconfirmed outcome is never the last: it waits the longest backoff and asks again."""
    if isinstance(error, Unconfirmed):
        return policy.max_backoff
    if attempts >= policy.max_attempts:
        return None
    return policy.backoff(attempts)


async def ask(find: Callable[[], Awaitable[ProviderResult | None]], policy: RetryPolicy) -> tuple[
        str | None, ProviderError | None]:
    """Only ask the provider whether it charged (or refunded), never act: once the attempts are spent with the
    outcome unknown, or once the breaker was waited out after an ambiguous attempt. Its reference if it did;
    a plain failure if it says it did not (nothing can have moved); `Unconfirmed` if it cannot say; and a
    breaker's refusal as such (the question did not reach it)."""
    found, failure = await call(find, policy)
    if isinstance(failure, CircuitOpen):
        return None, failure
    if failure is not None:
        return None, Unconfirmed(f"{OUTCOME_UNKNOWN}; whether the provider acted is not known yet ({failure.reason})")
    if found is None:
        return None, ProviderUnavailable(f"{OUTCOME_UNKNOWN}; the provider holds nothing for it", ambiguous=False)
    return found, None


@attrs.frozen(kw_only=True)
class Verdict:
    """What a transient failure leads to. `counted`: the call reached the provider and is an attempt (a
    breaker's refusal is not). `retry_in`: seconds until the next try, None to give up with `code` and
    `reason` (the work then fails and is dead-lettered)."""

    counted: bool
    retry_in: float | None = None
    code: FailureCode | None = None
    reason: str = ""


def judge(error: ProviderUnavailable, attempts: int, waiting_since: datetime | None, now: datetime, *,
          ambiguous: bool, policy: RetryPolicy) -> Verdict:
    """The next step after `error`, given the `attempts` made so far (this call included if it was one), the
    first breaker refusal (`waiting_since`) and whether an earlier attempt may have been processed.

    A refusal waits for the breaker, at most `breaker_max_wait` since the first refusal; then the work fails
    `provider_unavailable`, unless an earlier attempt is ambiguous: money in clearing is better than money in
    two places, so it waits until the provider can be asked (and is then only asked, see `waited_out`). A
    failure that certainly moved nothing after the wait is over fails it too; otherwise the retry schedule
    (`retry_wait`) decides, and running out of attempts is `retries_exhausted`.
    """
    waited = 0.0 if waiting_since is None else (now - waiting_since).total_seconds()
    if isinstance(error, CircuitOpen):
        left = policy.breaker_max_wait - waited
        if left > 0 or ambiguous:
            wait = breaker_wait(error, policy)
            return Verdict(counted=False, retry_in=min(wait, left) if left > 0 else wait)
        return Verdict(counted=False, code=FailureCode.PROVIDER_UNAVAILABLE,
                       reason=f"{error.reason} (the provider stayed unavailable for {waited:.0f}s)")
    if waited_out(waiting_since, now, policy) and not error.ambiguous:
        return Verdict(counted=True, code=FailureCode.PROVIDER_UNAVAILABLE,
                       reason=f"{error.reason} (the provider stayed unavailable for {waited:.0f}s)")
    retry_in = retry_wait(error, attempts, policy)
    if retry_in is None:
        return Verdict(counted=True, code=FailureCode.RETRIES_EXHAUSTED,
                       reason=f"{error.reason} (gave up after {attempts} attempts)")
    return Verdict(counted=True, retry_in=retry_in)


def waited_out(waiting_since: datetime | None, now: datetime, policy: RetryPolicy) -> bool:
    """Whether work first refused by a breaker at `waiting_since` has waited `breaker_max_wait` for it."""
    return waiting_since is not None and (now - waiting_since).total_seconds() >= policy.breaker_max_wait

"""Whether a failed provider call is final: after an ambiguous failure, the provider is asked whether it acted.

A timeout or a dropped connection says nothing about whether money moved. A
payment (or refund) whose attempts ran out is failed only when no attempt was
ambiguous, or when the provider confirms it holds no charge (or refund) for it.
If the provider cannot be asked, it stays unfinished and is tried again later:
money in clearing is better than money in two places.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from core.providers import ProviderError, ProviderResult, ProviderUnavailable
from core.usecases.provider_calls import Unconfirmed, call
from core.work import RetryPolicy

#: Why an attempt is made when every attempt is spent and the last outcome is still unknown.
OUTCOME_UNKNOWN = "the attempts ran out with the outcome unknown"


async def confirm(
    error: ProviderUnavailable, ambiguous_before: bool, find: Callable[[], Awaitable[ProviderResult | None]],
    policy: RetryPolicy,
) -> tuple[str | None, ProviderError | None]:
    """Before the last failure becomes final: the provider's reference if it did charge (or refund)
    after all; the error itself if nothing can have moved; `Unconfirmed` if that cannot be known yet."""
    if not (error.ambiguous or ambiguous_before):
        return None, error
    found, failure = await call(find, policy)
    if failure is not None:
        return None, Unconfirmed(f"{error.reason}; whether the provider acted is not known yet ({failure.reason})")
    if found is not None:
        return found, error
    return None, ProviderUnavailable(error.reason, ambiguous=False)

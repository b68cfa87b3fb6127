"""Reading a provider's answers: a final status onto the port's result or errors, and finding ours in a lookup."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.providers import ProviderDeclined, ProviderResult, ProviderUnavailable


def text(value: object) -> str | None:
    """`value` if it is a non-empty string, else None (for picking fields out of untrusted JSON)."""
    return value if isinstance(value, str) and value else None


def found(
    provider: str, items: object, ours: str, owner: Callable[[dict[str, Any]], object], *,
    done: frozenset[str], failed: frozenset[str],
) -> ProviderResult | None:
    """The finished item among a lookup's `items` that `owner(item)` says is `ours` (its id), or None.

    Items of someone else's are ignored. None when all of ours are `failed` (or there are none);
    `ProviderUnavailable` when `items` is not a list, or one of ours is neither done nor failed yet
    (the provider itself cannot tell yet).
    """
    if not isinstance(items, list):
        raise ProviderUnavailable(f"{provider} sent an unparseable lookup response")
    unfinished = None
    for item in items:
        if not isinstance(item, dict) or owner(item) != ours:
            continue
        reference, state = text(item.get("id")), text(item.get("status"))
        if state in done:
            if reference is None:
                raise ProviderUnavailable(f"{provider} sent an unparseable lookup response")
            return ProviderResult(reference)
        if state not in failed:
            unfinished = state or "unknown"
    if unfinished is not None:
        raise ProviderUnavailable(f"{provider} has not finished the request (status {unfinished})")
    return None


def settled(
    provider: str, status: int, body: dict[str, Any], refusal: str | None, *,
    done: frozenset[str], failed: frozenset[str],
) -> ProviderResult:
    """The result of a charge or refund answered with HTTP `status` and `body` (a JSON object).

    A 4xx is `ProviderDeclined` with `refusal`, the provider's own words for it (if it gave any). Otherwise
    the body's `id` is the reference and its `status` must be one of `done`: one of `failed` is
    `ProviderDeclined`, any other `ProviderUnavailable` (not final yet: the same key later returns the final
    state), and so is a body without both.
    """
    if status >= 400:
        raise ProviderDeclined(refusal or f"{provider} refused the request (HTTP {status})")
    reference, state = text(body.get("id")), text(body.get("status"))
    if reference is None or state is None:
        raise ProviderUnavailable(f"{provider} sent an unparseable response (HTTP {status})")
    if state in failed:
        raise ProviderDeclined(f"{provider} answered with status {state}")
    if state not in done:  # e.g. Stripe's "processing", PayPal's PENDING or APPROVED order
        raise ProviderUnavailable(f"{provider} has not finished the request (status {state})")
    return ProviderResult(reference)

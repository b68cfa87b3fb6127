"""The payment-provider port: charges and refunds through an external provider, and how they fail."""

from __future__ import annotations

from datetime import date
from typing import Protocol
from uuid import UUID

import attrs

from core.reconciliation import Settled


@attrs.frozen(kw_only=True)
class ProviderRequest:
    """What every call to a provider names: the payment, `amount` minor units of `currency`, and metadata."""

    payment_id: UUID
    amount: int
    currency: str
    metadata: dict[str, str]


@attrs.frozen(kw_only=True)
class ChargeRequest(ProviderRequest):
    """Charge the payment; `idempotency_key` is the payment id, stable across retries."""

    description: str | None

    @property
    def idempotency_key(self) -> str:
        return str(self.payment_id)


@attrs.frozen(kw_only=True)
class RefundRequest(ProviderRequest):
    """Refund part or all of the payment's charge; `idempotency_key` is the refund id, stable across retries."""

    refund_id: UUID
    charge_reference: str
    reason: str | None

    @property
    def idempotency_key(self) -> str:
        return str(self.refund_id)


@attrs.frozen
class ProviderResult:
    """The provider's reference for a charge or refund that succeeded."""

    reference: str


class ProviderError(Exception):
    """A provider call that did not succeed; `reason` is safe to show to the payment's owner."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ProviderDeclined(ProviderError):
    """A permanent refusal (card declined, insufficient funds at the provider): never retried."""


class ProviderUnavailable(ProviderError):
    """A transient failure: retried with backoff, same idempotency key.

    `ambiguous` says the request may have been processed (a timeout, a connection dropped after
    sending, a 500): only the provider can tell whether money moved. It is False when the
    provider certainly did nothing (connection refused, 502/503/504, 429, an open breaker).
    """

    def __init__(self, reason: str, *, ambiguous: bool = True) -> None:
        super().__init__(reason)
        self.ambiguous = ambiguous


class CircuitOpen(ProviderUnavailable):
    """The provider's circuit breaker is open: the call was not made. The next call is worth
    trying no sooner than `retry_after` seconds from now (when the breaker lets a probe through)."""

    def __init__(self, reason: str, retry_after: float = 0.0) -> None:
        super().__init__(reason, ambiguous=False)
        self.retry_after = retry_after


class PaymentProvider(Protocol):
    """One external provider (`stripe`, `paypal`).

    Both calls are idempotent on the request's `idempotency_key`: repeating one
    returns the first result and never charges or refunds twice. They raise
    `ProviderDeclined` for a permanent refusal and `ProviderUnavailable` for
    anything that may succeed if repeated (including a timeout, after which the
    outcome is unknown until the call is repeated).
    """

    name: str

    async def charge(self, request: ChargeRequest) -> ProviderResult: ...

    async def refund(self, request: RefundRequest) -> ProviderResult: ...

    async def find_charge(self, request: ChargeRequest) -> ProviderResult | None:
        """The succeeded charge the provider holds for `request` (found by its payment id), or None
        if it holds none. Raises `ProviderUnavailable` when it cannot tell. Never charges."""
        ...

    async def find_refund(self, request: RefundRequest) -> ProviderResult | None:
        """The succeeded refund the provider holds for `request` (found by its refund id), or None.
        Raises `ProviderUnavailable` when it cannot tell. Never refunds."""
        ...

    async def settlements(self, day: date) -> list[Settled]:
        """The provider's settlement report for the UTC `day`: every charge and refund it settled that day,
        with its amount, currency and the idempotency key it was requested under (a refund also names its
        charge's key). Raises `ProviderUnavailable` when the report cannot be read in full."""
        ...

"""Holds (API.md §9): an amount of a source account reserved for a destination until captured, voided or expired.

A hold's amount is part of its source's `held` (so of what it cannot spend) while the hold is active. Every
change of a hold takes its source account's row lock first: a hold and the money it reserves change together,
so an account's `held` is always the sum of its active holds, and no hold is captured twice or both captured and
released. A hold past `expires_at` is expired from that instant on: reads show it so before anything writes it
(`effective_status`), and whatever next locks its source (a movement, a capture, the worker's sweep) records it.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from uuid import UUID

import attrs

from core.errors import FieldError, InvalidStateTransition, ValidationFailed

#: API.md §9: `expires_in` in seconds.
MIN_EXPIRY, MAX_EXPIRY, DEFAULT_EXPIRY = 60, 2_592_000, 604_800


class HoldStatus(enum.StrEnum):
    """Where a hold is in its life: `active` until captured, voided or expired (each final)."""

    ACTIVE = "active"
    CAPTURED = "captured"
    VOIDED = "voided"
    EXPIRED = "expired"


def expiry(expires_in: int | None, now: datetime) -> datetime:
    """When a hold made `now` with `expires_in` seconds expires; `ValidationFailed` outside 60 s to 30 days."""
    seconds = DEFAULT_EXPIRY if expires_in is None else expires_in
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not MIN_EXPIRY <= seconds <= MAX_EXPIRY:
        raise ValidationFailed([FieldError("expires_in", f"must be a whole number of seconds from {MIN_EXPIRY} "
                                                         f"to {MAX_EXPIRY}")])
    return now + timedelta(seconds=seconds)


@attrs.define(kw_only=True)
class Hold:
    """Two-phase transfer: reserved now, moved (in full or in part) by its capture."""

    id: UUID
    tenant_id: UUID
    source_account_id: UUID
    destination_account_id: UUID
    amount: int
    currency: str
    status: HoldStatus = attrs.field(default=HoldStatus.ACTIVE, converter=HoldStatus)
    captured_amount: int = 0
    payment_id: UUID | None = None
    expires_at: datetime
    description: str | None = None
    metadata: dict[str, str] = attrs.field(factory=dict)
    correlation_id: str | None = None
    created_at: datetime
    updated_at: datetime

    def effective_status(self, now: datetime) -> HoldStatus:
        """Its status as of `now`: an active hold past `expires_at` is expired, written or not."""
        if self.status is HoldStatus.ACTIVE and now >= self.expires_at:
            return HoldStatus.EXPIRED
        return self.status

    def is_due(self, now: datetime) -> bool:
        """Active, and past its expiry: to be recorded expired."""
        return self.status is HoldStatus.ACTIVE and now >= self.expires_at

    def _end(self, status: HoldStatus, at: datetime) -> None:
        if self.effective_status(at) is not HoldStatus.ACTIVE:
            raise InvalidStateTransition(f"hold {self.id} is {self.effective_status(at)}, no longer active")
        self.status, self.updated_at = status, at

    def ensure_capturable(self, amount: int, at: datetime) -> None:
        """`InvalidStateTransition` unless active at `at`; `ValidationFailed` unless 0 < `amount` ≤ held."""
        if self.effective_status(at) is not HoldStatus.ACTIVE:
            raise InvalidStateTransition(f"hold {self.id} is {self.effective_status(at)}, no longer active")
        if not 0 < amount <= self.amount:
            raise ValidationFailed([FieldError("amount", "must be greater than zero and at most the held amount")])

    def capture(self, amount: int, payment_id: UUID, at: datetime) -> None:
        """Captured for `amount` (≤ the held amount) by the transfer `payment_id`; the rest is released."""
        self.ensure_capturable(amount, at)
        self._end(HoldStatus.CAPTURED, at)
        self.captured_amount, self.payment_id = amount, payment_id

    def void(self, at: datetime) -> None:
        """Released whole."""
        self._end(HoldStatus.VOIDED, at)

    def expire(self, at: datetime) -> None:
        """Recorded expired (it already was, since `expires_at`)."""
        if not self.is_due(at):
            raise InvalidStateTransition(f"hold {self.id} is not due to expire")
        self.status, self.updated_at = HoldStatus.EXPIRED, at

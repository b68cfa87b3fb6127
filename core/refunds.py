"""Refunds of a payment: requested, then settled through the provider (or at once for internal transfers)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any
from uuid import UUID

import attrs

from core.errors import InvalidStateTransition
from core.money import format_minor
from core.work import RetriedWork


class RefundStatus(enum.StrEnum):
    """A refund is pending until the provider (or, for an internal transfer, the ledger) settles it."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@attrs.define(kw_only=True)
class Refund(RetriedWork):
    """Money returned from a completed payment to its source account (through the provider for an external
    payment: its attempts, and when the next is due, are `RetriedWork`'s)."""

    id: UUID
    tenant_id: UUID
    payment_id: UUID
    amount: int
    currency: str
    status: RefundStatus = attrs.field(default=RefundStatus.PENDING, converter=RefundStatus)
    reason: str | None = None
    provider_reference: str | None = None
    failure_reason: str | None = None
    correlation_id: str | None = None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None

    @property
    def outstanding(self) -> bool:
        """Pending and succeeded refunds count against the payment's amount."""
        return self.status in (RefundStatus.PENDING, RefundStatus.SUCCEEDED)

    def succeed(self, reference: str | None, at: datetime) -> None:
        """The provider (or, internally, the ledger) refunded. Also from `failed`: a refund the provider confirms
        after it was recorded failed, the ledger following the provider (`core/usecases/late_refunds.py`)."""
        self._end(RefundStatus.SUCCEEDED, at, late_ok=True)
        self.provider_reference = reference
        self.failure_reason = None

    def fail(self, reason: str, at: datetime) -> None:
        self._end(RefundStatus.FAILED, at)
        self.failure_reason = reason

    def _end(self, status: RefundStatus, at: datetime, *, late_ok: bool = False) -> None:
        if self.status != RefundStatus.PENDING and not (late_ok and self.status == RefundStatus.FAILED):
            raise InvalidStateTransition(f"refund {self.id} is already {self.status}")
        self.status = status
        self.updated_at = self.completed_at = at
        self.next_attempt_at = None

    def summary(self) -> dict[str, Any]:
        """What a payment event records about the refund."""
        return {"id": str(self.id), "amount": format_minor(self.amount, self.currency), "status": self.status,
                "reason": self.reason,
                "failure_reason": self.failure_reason}

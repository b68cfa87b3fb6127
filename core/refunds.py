"""Refunds of a payment: requested, then settled through the provider (or at once for internal transfers)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import attrs

from core.errors import InvalidStateTransition
from core.money import format_minor

PENDING, SUCCEEDED, FAILED = "pending", "succeeded", "failed"


@attrs.define(kw_only=True)
class Refund:
    """Money returned from a completed payment to its source account."""

    id: UUID
    tenant_id: UUID
    payment_id: UUID
    amount: int
    currency: str
    status: str = PENDING
    reason: str | None = None
    provider_reference: str | None = None
    failure_reason: str | None = None
    attempts: int = 0
    next_attempt_at: datetime | None = None
    correlation_id: str | None = None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None

    @property
    def outstanding(self) -> bool:
        """Pending and succeeded refunds count against the payment's amount."""
        return self.status in (PENDING, SUCCEEDED)

    def succeed(self, reference: str | None, at: datetime) -> None:
        self._end(SUCCEEDED, at)
        self.provider_reference = reference

    def fail(self, reason: str, at: datetime) -> None:
        self._end(FAILED, at)
        self.failure_reason = reason

    def _end(self, status: str, at: datetime) -> None:
        if self.status != PENDING:
            raise InvalidStateTransition(f"refund {self.id} is already {self.status}")
        self.status = status
        self.updated_at = self.completed_at = at
        self.next_attempt_at = None

    def summary(self) -> dict[str, Any]:
        """What a payment event records about the refund."""
        return {"id": str(self.id), "amount": format_minor(self.amount, self.currency), "status": self.status,
                "reason": self.reason,
                "failure_reason": self.failure_reason}

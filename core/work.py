"""Background work: what a worker is asked to do, its retry schedule, and dead letters."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import attrs

from core.commands import Command
from core.ids import new_id

PAYMENT, REFUND = "payment", "refund"


@attrs.frozen(kw_only=True)
class WorkItem(Command):
    """Process one payment or refund (idempotent: doing it twice has the effect of once)."""

    kind: str
    target_id: UUID


@attrs.define(kw_only=True)
class RetriedWork:
    """What a payment and a refund share as work a worker retries: the attempts made so far, and when the
    next one is due (None: as soon as a worker can)."""

    attempts: int = 0
    next_attempt_at: datetime | None = None

    def wait(self, now: datetime) -> float | None:
        """Seconds still to wait before the next attempt is due (an early duplicate message), else None."""
        if self.next_attempt_at is not None and self.next_attempt_at > now:
            return (self.next_attempt_at - now).total_seconds()
        return None


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """Attempts and exponential backoff of provider calls (API.md §6: 1 s, 2 s, 4 s … capped, 5 attempts), and
    how long work waits for an open circuit breaker (its refusals are not attempts) before it fails."""

    max_attempts: int = 5
    min_backoff: float = 1.0
    max_backoff: float = 30.0
    provider_timeout: float = 10.0
    lock_ttl: float = 30.0
    breaker_max_wait: float = 3600.0

    def backoff(self, failed_attempts: int) -> float:
        """Seconds to wait after the `failed_attempts`-th failure: min, 2 min, 4 min … capped at max."""
        return float(min(self.max_backoff, self.min_backoff * 2 ** max(0, failed_attempts - 1)))


@attrs.frozen(kw_only=True)
class DeadLetter:
    """A payment or refund whose work ended in failure (or could not be done), kept for inspection and re-drive."""

    id: UUID
    tenant_id: UUID
    kind: str
    target_id: UUID
    error: str
    attempts: int
    correlation_id: str | None
    created_at: datetime
    retried_at: datetime | None = None

    @classmethod
    def of(cls, item: WorkItem, *, error: str, attempts: int, at: datetime) -> DeadLetter:
        """A new dead letter for `item`, with the error its work ended with."""
        return cls(id=new_id(), tenant_id=item.tenant_id, kind=item.kind, target_id=item.target_id, error=error,
                   attempts=attempts, correlation_id=item.correlation_id, created_at=at)

    def work(self) -> WorkItem:
        return WorkItem(kind=self.kind, tenant_id=self.tenant_id, target_id=self.target_id,
                        correlation_id=self.correlation_id)

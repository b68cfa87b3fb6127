"""What a worker's use cases are given (`Deps`, their ports) and what they report back (`Outcome`)."""

from __future__ import annotations

import enum
from collections.abc import Callable

import attrs

from core.payments import PaymentStatus
from core.ports import Clock, Locks, UnitOfWorkFactory
from core.providers import PaymentProvider
from core.refunds import RefundStatus
from core.usecases.shared_attempts import SharedAttempts
from core.work import RetryPolicy


class WorkResult(enum.StrEnum):
    """What became of one delivery of a work message."""

    #: The payment or refund reached a final state (or needs nothing more from this message).
    DONE = "done"
    #: Try again in `Outcome.retry_in` seconds.
    RETRY = "retry"
    #: Nothing to do: the payment or refund is gone, final, or not this worker's to finish.
    SKIPPED = "skipped"
    #: Another worker holds the lock on it.
    BUSY = "busy"
    #: The provider charged a payment that had already failed: the charge is refunded.
    LATE = "late"


@attrs.frozen
class Outcome:
    """What became of one delivery, the status it left the payment or refund in, and when to try again."""

    result: WorkResult
    status: PaymentStatus | RefundStatus | None = None
    retry_in: float | None = None


@attrs.frozen(kw_only=True)
class Deps:
    """The ports a worker's use cases need."""

    uow_factory: UnitOfWorkFactory
    providers: Callable[[str], PaymentProvider]
    locks: Locks
    clock: Clock
    policy: RetryPolicy
    #: Units of work shared by the attempts waiting together (a worker process sets them); None: each its own.
    shared: SharedAttempts | None = None

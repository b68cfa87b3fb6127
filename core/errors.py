"""The CoreError tree: every business failure has a stable `code` the HTTP layer maps to a status."""

from __future__ import annotations

from typing import TypeVar

import attrs

_T = TypeVar("_T")


@attrs.frozen
class FieldError:
    """One invalid input field and what is wrong with it."""

    field: str
    message: str


class CoreError(Exception):
    """Base of every expected failure; `code` is the problem slug of API.md §1.

    `transient` failures (a dependency unreachable, a transaction aborted by a concurrent one)
    say nothing about the request itself: trying it again may succeed, so their outcome is
    never remembered for an idempotency key.
    """

    code = "internal_error"
    transient = False

    def __init_subclass__(cls, *, code: str = "", transient: bool = False, **kwargs: object) -> None:
        """`class NotFound(CoreError, code="not_found")`: each subclass declares its slug where it is named;
        a subclass of a subclass inherits both unless it says otherwise."""
        super().__init_subclass__(**kwargs)
        if code:
            cls.code = code
        if transient:
            cls.transient = True

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ValidationFailed(CoreError, code="validation_error"):
    """Input breaks a rule of the contract; `errors` lists the offending fields."""

    def __init__(self, errors: list[FieldError], detail: str = "") -> None:
        super().__init__(detail or "; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


class NotFound(CoreError, code="not_found"):
    """The resource does not exist in the caller's tenant (other tenants' objects look missing)."""


def found(value: _T | None, what: str) -> _T:
    """`value` as looked up, or `NotFound("<what> not found")` when the lookup found nothing."""
    if value is None:
        raise NotFound(f"{what} not found")
    return value


class UnknownEvent(ValidationFailed):
    """The events feed was asked to continue after an event it does not hold for the caller: never written,
    another tenant's, or purged after its retention. `field` names the parameter that held it. A
    `validation_error` (API.md §1 lists the slugs; this is a bad parameter like any other)."""

    def __init__(self, field: str, message: str = "names no event of this feed (unknown, or past its retention)"
                 ) -> None:
        super().__init__([FieldError(field, message)])


class InsufficientFunds(CoreError, code="insufficient_funds"):
    """The source account's balance is below the amount to move."""


class CurrencyMismatch(CoreError, code="currency_mismatch"):
    """An account's currency differs from the currency of the movement."""


class SameAccount(CoreError, code="same_account"):
    """Source and destination of a transfer are the same account."""


class InvalidStateTransition(CoreError, code="invalid_state_transition"):
    """The payment's state machine does not allow the requested change."""


class AccountFrozen(CoreError, code="account_frozen"):
    """A frozen account takes part in no new movement, as source or as destination (API.md §3)."""


class AccountClosed(CoreError, code="account_closed"):
    """A closed account is final: no movement and no status change (API.md §3)."""


class RefundExceedsPayment(CoreError, code="refund_exceeds_payment"):
    """Pending plus succeeded refunds would exceed the payment's amount."""


class IdempotencyKeyReused(CoreError, code="idempotency_key_reused"):
    """The idempotency key was already used for a different request."""


class IdempotencyRequestInProgress(CoreError, code="idempotency_request_in_progress"):
    """A request with the same idempotency key is still being processed."""


class Unauthorized(CoreError, code="unauthorized"):
    """No API key, or a key that does not exist or was revoked."""


class Forbidden(CoreError, code="forbidden"):
    """The API key lacks the scope the operation needs."""


class Unavailable(CoreError, code="service_unavailable", transient=True):
    """A dependency (database, Redis) is unreachable or overloaded; the request may be retried."""


class Unreachable(Unavailable):
    """The dependency cannot be reached at all or lost the connection (restarting, failing over), as opposed to a wait
    that ran out under load: worth waiting a few seconds for where giving up would repeat work done outside it."""


class ConcurrencyConflict(CoreError, code="service_unavailable", transient=True):
    """A serialization failure or deadlock aborted the transaction; the whole unit of work may be retried."""


@attrs.frozen
class LegFailure:
    """Why one transfer of a batch (API.md §10) fails: its `index` in the batch and the error it meets."""

    index: int
    error: CoreError


class BatchFailed(CoreError, code="batch_failed"):
    """An atomic batch would fail: `failures` name each transfer that fails, by index; nothing was written."""

    def __init__(self, failures: list[LegFailure]) -> None:
        first = failures[0]
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        super().__init__(f"transfer {first.index} fails: {first.error.detail}{more}; nothing was written")
        self.failures = failures

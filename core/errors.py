"""The CoreError tree: every business failure has a stable `code` the HTTP layer maps to a status."""

from __future__ import annotations

import attrs


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

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ValidationFailed(CoreError):
    """Input breaks a rule of the contract; `errors` lists the offending fields."""

    code = "validation_error"

    def __init__(self, errors: list[FieldError], detail: str = "") -> None:
        super().__init__(detail or "; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


class NotFound(CoreError):
    """The resource does not exist in the caller's tenant (other tenants' objects look missing)."""

    code = "not_found"


class InsufficientFunds(CoreError):
    """The source account's balance is below the amount to move."""

    code = "insufficient_funds"


class CurrencyMismatch(CoreError):
    """An account's currency differs from the currency of the movement."""

    code = "currency_mismatch"


class SameAccount(CoreError):
    """Source and destination of a transfer are the same account."""

    code = "same_account"


class InvalidStateTransition(CoreError):
    """The payment's state machine does not allow the requested change."""

    code = "invalid_state_transition"


class RefundExceedsPayment(CoreError):
    """Pending plus succeeded refunds would exceed the payment's amount."""

    code = "refund_exceeds_payment"


class IdempotencyKeyReused(CoreError):
    """The idempotency key was already used for a different request."""

    code = "idempotency_key_reused"


class IdempotencyRequestInProgress(CoreError):
    """A request with the same idempotency key is still being processed."""

    code = "idempotency_request_in_progress"


class Unauthorized(CoreError):
    """No API key, or a key that does not exist or was revoked."""

    code = "unauthorized"


class Forbidden(CoreError):
    """The API key lacks the scope the operation needs."""

    code = "forbidden"


class Unavailable(CoreError):
    """A dependency (database, Redis) is unreachable or overloaded; the request may be retried."""

    code = "service_unavailable"
    transient = True


class ConcurrencyConflict(CoreError):
    """A serialization failure or deadlock aborted the transaction; the whole unit of work may be retried."""

    code = "service_unavailable"
    transient = True

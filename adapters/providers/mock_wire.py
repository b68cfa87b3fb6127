"""What a mock provider wire format is: the requests it parses, the refusals it raises, the `Wire` it offers."""

from __future__ import annotations

from typing import Protocol

import attrs

from adapters.providers.mock_state import Answer, Kind, Record


class Refused(Exception):
    """A request answered with an error and nothing recorded; `problem` picks the status and the error's shape."""

    def __init__(self, message: str, field: str | None = None, problem: str = "invalid") -> None:
        super().__init__(message)
        self.message = f"Invalid {field}: {message}" if field else message
        self.field, self.problem = field, problem


@attrs.frozen
class ChargeIn:
    """A parsed charge request, whichever wire format it came in."""

    amount: int
    currency: str
    description: str | None
    metadata: dict[str, str]
    reference: str | None = None


@attrs.frozen
class RefundIn:
    """A parsed refund request; `amount` None refunds what is left, `currency` None means the charge's."""

    charge_id: str
    amount: int | None
    currency: str | None
    reason: str | None
    metadata: dict[str, str]
    invoice_id: str | None = None


class Wire(Protocol):
    """One provider's dialect: how the mock server reads its requests and words its answers.

    Problems (`Refused.problem`, `error`) are the mock's own vocabulary: unauthorized, missing_key, invalid,
    conflict, not_found, exceeds, charge_declined, refund_declined, unavailable, timeout.
    """

    provider: str
    key_header: str  # the header that carries the idempotency key

    def new_id(self, kind: Kind) -> str:
        """A fresh id for a charge or refund, in the provider's style."""
        ...

    def lookup_value(self, kind: Kind, request: ChargeIn | RefundIn) -> str | None:
        """What the provider's lookup will find this charge or refund by, if anything."""
        ...

    def parse_lookup(self, kind: Kind, args: dict[str, str]) -> str:
        """The value a lookup's query string asks for; `Refused` if it asks for anything else."""
        ...

    def found(self, kind: Kind, records: list[Record]) -> Answer:
        """The answer to a lookup that found `records`."""
        ...

    def parse_charge(self, raw: bytes) -> ChargeIn:
        """A charge request's body; `Refused` if it is malformed."""
        ...

    def parse_refund(self, raw: bytes, charge_id: str | None) -> RefundIn:
        """A refund request's body (and the charge its path names, if it names one); `Refused` if malformed."""
        ...

    def error(self, problem: str, message: str, field: str | None = None) -> Answer:
        """An error answer, in the provider's shape."""
        ...

    def charged(self, record: Record) -> Answer:
        """The answer to a charge made."""
        ...

    def refunded(self, record: Record) -> Answer:
        """The answer to a refund made."""
        ...

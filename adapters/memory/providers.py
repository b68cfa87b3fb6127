"""An in-memory payment provider with the mock server's semantics: idempotent by key, steered by metadata."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import ClassVar

import attrs

from adapters.providers.outcomes import CHARGE_OUTCOME, REFUND_OUTCOME, Outcome, parse_outcome, settled_amount
from core.money import MAX_MINOR, MINOR_UNITS
from core.providers import ChargeRequest, ProviderDeclined, ProviderResult, ProviderUnavailable, RefundRequest
from core.reconciliation import Settled

SUCCEEDED = "succeeded"
DECLINED = "declined"


@attrs.define(kw_only=True)
class Recorded:
    """A charge or refund the fake made (`succeeded`) or declined, kept under its idempotency key."""

    declined: ClassVar[str]  # the decline's reason, the first time and on every repeat

    key: str
    reference: str
    amount: int
    currency: str
    status: str
    metadata: dict[str, str]
    requests: int = 1
    at: datetime = attrs.field(factory=lambda: datetime.now(UTC))  # when it was made (and settled, if it succeeded)

    @property
    def settled_amount(self) -> int:
        """What the settlement report says: the amount, unless `mock_settled_amount` asks it to say another."""
        return settled_amount(self.metadata, self.amount)

    @property
    def succeeded(self) -> bool:
        return self.status == SUCCEEDED

    def result(self) -> ProviderResult:
        """What the port answers for this record: its reference, or `ProviderDeclined`."""
        if not self.succeeded:
            raise ProviderDeclined(self.declined)
        return ProviderResult(self.reference)


@attrs.define(kw_only=True)
class RecordedCharge(Recorded):
    """A charge the fake made or declined."""

    declined: ClassVar[str] = "Your card was declined."

    description: str | None

    def matches(self, request: ChargeRequest) -> bool:
        """Whether a repeat of the key asks for the same charge."""
        return (self.amount, self.currency) == (request.amount, request.currency)


@attrs.define(kw_only=True)
class RecordedRefund(Recorded):
    """A refund of the charge `charge_reference` the fake made or declined."""

    declined: ClassVar[str] = "The refund was declined by the provider."

    charge_reference: str
    reason: str | None

    def matches(self, request: RefundRequest) -> bool:
        """Whether a repeat of the key asks for the same refund."""
        return (self.amount, self.currency, self.charge_reference) == (
            request.amount, request.currency, request.charge_reference)


class InMemoryProvider:
    """The `PaymentProvider` port in memory, for unit tests of the core; passes the providers' contract suite.

    Like the mock server: a repeated idempotency key returns the first result
    (a success or a decline) and never charges twice; `metadata["mock_outcome"]`
    (`mock_refund_outcome` for refunds, falling back to the charge's) picks
    `succeed`, `decline`, `fail_transient:N` (the key's first N calls raise
    `ProviderUnavailable`, not ambiguous: like the server's 503) or `timeout` (waits
    `timeout` seconds, then raises an ambiguous `ProviderUnavailable`; nothing
    recorded). Refunds need a succeeded charge of this provider and never exceed
    what is left of it. `find_charge` / `find_refund` return the succeeded charge
    or refund recorded under the payment's / refund's id, else None.

    Failure injection: `available = False` makes every call (lookups too) raise
    `ProviderUnavailable` (not ambiguous), and `fail_next = N` the next N calls,
    before anything is looked at or recorded (like the server's failure rate).
    `calls` lists every call as (kind, idempotency key), including the failed ones;
    lookups as `find_charge` / `find_refund` with the payment's / refund's id, settlement reports as
    `settlements` with the day. `settlements` reports what succeeded on a UTC day by the time `clock` gave when
    it was made (`mock_settled_amount` in its metadata misreports its amount, as the server does).
    """

    def __init__(self, name: str, *, timeout: float = 0.0, clock: Callable[[], datetime] | None = None) -> None:
        self.name = name
        self.timeout = timeout
        self.clock = clock or (lambda: datetime.now(UTC))
        self.available = True
        self.fail_next = 0
        self.charges: dict[str, RecordedCharge] = {}  # by idempotency key
        self.refunds: dict[str, RecordedRefund] = {}  # by idempotency key
        self.calls: list[tuple[str, str]] = []
        self._requests: Counter[tuple[str, str]] = Counter()

    async def charge(self, request: ChargeRequest) -> ProviderResult:
        key = request.idempotency_key
        await self._enter("charge", key, request.amount, request.currency)
        if (charge := self.charges.get(key)) is not None:
            return self._repeat("charge", charge, charge.matches(request))
        outcome = _parse(request.metadata.get(CHARGE_OUTCOME))
        await self._proceed("charge", key, outcome)
        self.charges[key] = charge = RecordedCharge(
            key=key, reference=f"{self.name}_ch_{secrets.token_hex(8)}", amount=request.amount,
            currency=request.currency, status=_status(outcome), metadata=dict(request.metadata),
            requests=self._requests["charge", key], description=request.description, at=self.clock())
        return charge.result()

    async def refund(self, request: RefundRequest) -> ProviderResult:
        key = request.idempotency_key
        await self._enter("refund", key, request.amount, request.currency)
        if (refund := self.refunds.get(key)) is not None:
            return self._repeat("refund", refund, refund.matches(request))
        charge = next((c for c in self.charges.values() if c.reference == request.charge_reference), None)
        if charge is None or not charge.succeeded:
            raise ProviderDeclined(f"No successful charge {request.charge_reference!r} to refund.")
        if request.currency != charge.currency:
            raise ProviderDeclined(f"The currency must be the charge's ({charge.currency}).")
        left = charge.amount - sum(r.amount for r in self.refunds.values()
                                   if r.charge_reference == charge.reference and r.succeeded)
        if request.amount > left:
            raise ProviderDeclined(f"The refund amount ({request.amount}) is greater than what is left ({left}).")
        # a refund without its own steering follows the one its charge was made with
        outcome = _parse(request.metadata.get(REFUND_OUTCOME) or charge.metadata.get(REFUND_OUTCOME))
        await self._proceed("refund", key, outcome)
        self.refunds[key] = refund = RecordedRefund(
            key=key, reference=f"{self.name}_re_{secrets.token_hex(8)}", amount=request.amount,
            currency=charge.currency, status=_status(outcome), metadata=dict(request.metadata),
            requests=self._requests["refund", key], charge_reference=charge.reference, reason=request.reason,
            at=self.clock())
        return refund.result()

    async def find_charge(self, request: ChargeRequest) -> ProviderResult | None:
        key = str(request.payment_id)
        await self._reach("find_charge", key)
        charge = self.charges.get(key)
        return ProviderResult(charge.reference) if charge is not None and charge.succeeded else None

    async def find_refund(self, request: RefundRequest) -> ProviderResult | None:
        key = str(request.refund_id)
        await self._reach("find_refund", key)
        refund = self.refunds.get(key)
        return ProviderResult(refund.reference) if refund is not None and refund.succeeded else None

    async def settlements(self, day: date) -> list[Settled]:
        await self._reach("settlements", day.isoformat())
        by_reference = {charge.reference: charge for charge in self.charges.values()}
        lines = [Settled(kind="charge", idempotency_key=c.key, charge_key=c.key, reference=c.reference,
                         amount=c.settled_amount, currency=c.currency, settled_at=c.at)
                 for c in self.charges.values() if c.succeeded and c.at.astimezone(UTC).date() == day]
        lines += [Settled(kind="refund", idempotency_key=r.key, charge_key=by_reference[r.charge_reference].key,
                          reference=r.reference, charge_reference=r.charge_reference, amount=r.settled_amount,
                          currency=r.currency, settled_at=r.at)
                  for r in self.refunds.values() if r.succeeded and r.at.astimezone(UTC).date() == day]
        return sorted(lines, key=lambda line: line.settled_at)

    def _repeat(self, kind: str, recorded: Recorded, same: bool) -> ProviderResult:
        """A repeated key: the first answer again, unless the repeat asks for something else."""
        recorded.requests = self._requests[kind, recorded.key]
        if not same:
            raise ProviderDeclined("This idempotency key was already used with different parameters.")
        return recorded.result()

    async def _reach(self, kind: str, key: str) -> None:
        """Log the call and apply injected failures (not ambiguous: nothing was looked at or recorded)."""
        await asyncio.sleep(0)  # a real await point, as over the network, but the bookkeeping after it is atomic
        self.calls.append((kind, key))
        if not self.available or self.fail_next > 0:
            self.fail_next = max(0, self.fail_next - 1)
            raise ProviderUnavailable(f"{self.name} is unavailable (injected failure)", ambiguous=False)

    async def _enter(self, kind: str, key: str, amount: int, currency: str) -> None:
        """Log the call, apply injected failures and validation (nothing recorded), then count it for its key."""
        await self._reach(kind, key)
        if not 0 < amount <= MAX_MINOR or currency not in MINOR_UNITS:
            raise ProviderDeclined(f"Invalid amount or currency: {amount} {currency}")
        self._requests[kind, key] += 1

    async def _proceed(self, kind: str, key: str, outcome: Outcome) -> None:
        """Raise the transient failure or the timeout the outcome asks for, else return."""
        count = self._requests[kind, key]
        if outcome.kind == "fail_transient" and count <= outcome.failures:
            raise ProviderUnavailable(
                f"{self.name}: transient failure {count} of {outcome.failures} (mock outcome)", ambiguous=False)
        if outcome.kind == "timeout":
            await asyncio.sleep(self.timeout)
            raise ProviderUnavailable(f"{self.name} did not answer within {self.timeout:g} s", ambiguous=True)


def _parse(value: str | None) -> Outcome:
    try:
        return parse_outcome(value)
    except ValueError as error:
        raise ProviderDeclined(str(error)) from None


def _status(outcome: Outcome) -> str:
    return DECLINED if outcome.kind == "decline" else SUCCEEDED

"""What the mock server does with a charge or refund: replay its key, obey `mock_outcome`, refund no more than left."""

from __future__ import annotations

from datetime import UTC, datetime

from adapters.providers.mock_state import Answer, MockState, Record, Slot
from adapters.providers.mock_wire import ChargeIn, RefundIn, Refused, Wire
from adapters.providers.outcomes import CHARGE_OUTCOME, REFUND_OUTCOME, Outcome, parse_outcome

DECLINED = {"charge": "Your card was declined.", "refund": "The refund was declined by the provider."}


def charge(state: MockState, wire: Wire, slot: Slot, request: ChargeIn) -> Answer | None:
    """The answer to a charge request (None: `timeout`, nothing recorded); the caller holds the key's lock."""
    fingerprint = (request.amount, request.currency)
    if (record := state.charges.get(slot[1:])) is not None:
        return _replay(wire, record, fingerprint)
    outcome = _outcome(request.metadata.get(CHARGE_OUTCOME))
    if not _proceeds(state, slot, outcome):
        return None
    declined = outcome.kind == "decline"
    record = Record(wire.provider, wire.new_id("charge"), slot[2], request.amount, request.currency,
                    "declined" if declined else "succeeded", request.metadata, _now(), fingerprint,
                    description=request.description, lookup=wire.lookup_value("charge", request))
    record.answer = wire.error("charge_declined", DECLINED["charge"]) if declined else wire.charged(record)
    state.add("charge", slot[1:], record)
    return record.answer


def refund(state: MockState, wire: Wire, slot: Slot, request: RefundIn) -> Answer | None:
    """The answer to a refund request (None: `timeout`, nothing recorded); the caller holds the key's lock."""
    fingerprint = (request.charge_id, request.amount, request.currency)
    if (record := state.refunds.get(slot[1:])) is not None:
        return _replay(wire, record, fingerprint)
    charge = state.charges_by_id.get(request.charge_id)
    if charge is None or charge.provider != wire.provider:
        raise Refused(f"No such charge: {request.charge_id!r}.", problem="not_found")
    if charge.status != "succeeded":
        raise Refused(f"Charge {charge.id} was declined: there is nothing to refund.")
    if request.currency not in (None, charge.currency):
        raise Refused(f"The currency must be the charge's ({charge.currency}).", "currency")
    left = charge.amount - state.refunded[charge.id]
    amount = left if request.amount is None else request.amount
    if not 0 < amount <= left:
        raise Refused(f"The refund amount ({amount}) is greater than what is left to refund ({left}).",
                      "amount", problem="exceeds")
    # a refund without its own steering follows the one its charge was made with
    outcome = _outcome(request.metadata.get(REFUND_OUTCOME) or charge.metadata.get(REFUND_OUTCOME))
    if not _proceeds(state, slot, outcome):
        return None
    declined = outcome.kind == "decline"
    record = Record(wire.provider, wire.new_id("refund"), slot[2], amount, charge.currency,
                    "declined" if declined else "succeeded", request.metadata, _now(), fingerprint,
                    charge_id=charge.id, reason=request.reason, lookup=wire.lookup_value("refund", request))
    record.answer = wire.error("refund_declined", DECLINED["refund"]) if declined else wire.refunded(record)
    state.add("refund", slot[1:], record)
    state.refunded[charge.id] += 0 if declined else amount
    return record.answer


def _proceeds(state: MockState, slot: Slot, outcome: Outcome) -> bool:
    """False for `timeout`; raises the 503 of a `fail_transient:N` request among the key's first N."""
    if outcome.kind == "fail_transient" and (count := state.requests[slot]) <= outcome.failures:
        raise Refused(f"Transient failure {count} of {outcome.failures} (mock outcome).", problem="unavailable")
    return outcome.kind != "timeout"


def _outcome(value: str | None) -> Outcome:
    try:
        return parse_outcome(value)
    except ValueError as error:
        raise Refused(str(error), "metadata") from None


def _replay(wire: Wire, record: Record, fingerprint: tuple[object, ...]) -> Answer:
    if record.fingerprint != fingerprint:
        return wire.error("conflict", "This idempotency key was already used with different parameters.")
    return record.answer


def _now() -> str:
    return datetime.now(UTC).isoformat()

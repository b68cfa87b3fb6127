"""core.payments: the state machine of API.md §6 and the event history that folds into the state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from core.clock import timestamp
from core.errors import InvalidStateTransition
from core.payments import TRANSITIONS, FailureCode, Payment, PaymentStatus, PaymentType, fold

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
STATUSES = list(PaymentStatus)

#: API.md §6 written out independently of core.payments.TRANSITIONS.
ALLOWED = {
    (PaymentStatus.PENDING, PaymentStatus.PROCESSING), (PaymentStatus.PENDING, PaymentStatus.CANCELLED),
    (PaymentStatus.PROCESSING, PaymentStatus.COMPLETED), (PaymentStatus.PROCESSING, PaymentStatus.FAILED),
    (PaymentStatus.COMPLETED, PaymentStatus.PARTIALLY_REFUNDED), (PaymentStatus.COMPLETED, PaymentStatus.REFUNDED),
    (PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.PARTIALLY_REFUNDED),
    (PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED),
}
FORBIDDEN = sorted({(a, b) for a in STATUSES for b in STATUSES} - ALLOWED)


def payment(status: str = PaymentStatus.PENDING, payment_type: str = PaymentType.EXTERNAL_PAYMENT) -> Payment:
    return Payment(
        id=uuid4(), tenant_id=uuid4(), payment_type=payment_type, status=status, source_account_id=uuid4(),
        destination_account_id=uuid4() if payment_type == PaymentType.INTERNAL_TRANSFER else None, amount=1000,
        currency="USD", provider="stripe" if payment_type == PaymentType.EXTERNAL_PAYMENT else None,
        created_at=T0, updated_at=T0,
    )


def test_the_transition_table_is_exactly_api_md() -> None:
    assert {(a, b) for a, targets in TRANSITIONS.items() for b in targets} == ALLOWED
    assert set(TRANSITIONS) == set(STATUSES)


@pytest.mark.parametrize(("start", "end"), sorted(ALLOWED))
def test_every_allowed_transition(start: str, end: str) -> None:
    p = payment(start)
    at = T0 + timedelta(seconds=5)
    event = p.transition(end, at)
    assert (p.status, p.version, p.updated_at) == (end, 1, at)
    assert p.completed_at == (at if end == PaymentStatus.COMPLETED else None)
    assert (event.type, event.sequence, event.payment_id, event.tenant_id) == (f"payment.{end}", 1, p.id, p.tenant_id)
    assert event.data["status"] == end
    assert p.events == [event]


@pytest.mark.parametrize(("start", "end"), FORBIDDEN)
def test_every_other_transition_is_refused_and_changes_nothing(start: str, end: str) -> None:
    p = payment(start)
    with pytest.raises(InvalidStateTransition):
        p.transition(end, T0 + timedelta(seconds=1))
    assert (p.status, p.version, p.updated_at, p.events) == (start, 0, T0, [])


def test_transition_takes_a_custom_event_type() -> None:
    p = payment(PaymentStatus.COMPLETED)
    event = p.transition(PaymentStatus.PARTIALLY_REFUNDED, T0, "payment.refunded_partially")
    assert event.type == "payment.refunded_partially"


def test_folding_the_events_gives_the_current_state() -> None:
    p = payment()
    p.record("payment.created", T0)
    p.transition(PaymentStatus.PROCESSING, T0 + timedelta(seconds=1))
    p.provider_reference = "ch_123"
    p.transition(PaymentStatus.COMPLETED, T0 + timedelta(seconds=2))
    p.refunded_amount = 400
    p.transition(PaymentStatus.PARTIALLY_REFUNDED, T0 + timedelta(seconds=3))
    p.refunded_amount = 1000
    p.transition(PaymentStatus.REFUNDED, T0 + timedelta(seconds=4))

    assert [e.sequence for e in p.events] == [0, 1, 2, 3, 4]
    assert [e.type for e in p.events] == [
        "payment.created", "payment.processing", "payment.completed", "payment.partially_refunded", "payment.refunded"]
    expected = {
        "status": PaymentStatus.REFUNDED, "refunded_amount": "10.00", "provider_reference": "ch_123",
        "failure_code": None, "failure_reason": None,
        "updated_at": timestamp(T0 + timedelta(seconds=4)), "completed_at": timestamp(T0 + timedelta(seconds=2)),
    }
    assert fold(p.events) == p.snapshot() == expected
    assert fold(list(reversed(p.events))) == expected  # fold orders by sequence, not by list position
    assert fold(p.events[:3])["status"] == PaymentStatus.COMPLETED


def test_failed_payment_folds_with_its_code_and_reason() -> None:
    p = payment()
    p.record("payment.created", T0)
    p.transition(PaymentStatus.PROCESSING, T0)
    p.fail(FailureCode.DECLINED, "card_declined", T0 + timedelta(seconds=1))
    assert fold(p.events) == p.snapshot()
    assert (fold(p.events)["failure_code"], fold(p.events)["failure_reason"]) == ("declined", "card_declined")
    assert fold(p.events)["completed_at"] is None


def test_complete_internal() -> None:
    p = payment(payment_type=PaymentType.INTERNAL_TRANSFER)
    p.record("payment.created", T0)
    at = T0 + timedelta(milliseconds=1)
    event = p.complete_internal(at)
    assert (p.status, p.version, p.updated_at, p.completed_at) == (PaymentStatus.COMPLETED, 1, at, at)
    assert (event.type, event.sequence) == ("payment.completed", 1)
    assert fold(p.events) == p.snapshot()


@pytest.mark.parametrize(
    ("status", "payment_type"),
    [(PaymentStatus.PENDING, PaymentType.EXTERNAL_PAYMENT), (PaymentStatus.PROCESSING, PaymentType.INTERNAL_TRANSFER),
     (PaymentStatus.COMPLETED, PaymentType.INTERNAL_TRANSFER),
     (PaymentStatus.CANCELLED, PaymentType.INTERNAL_TRANSFER)],
)
def test_complete_internal_only_from_a_pending_internal_transfer(status: str, payment_type: str) -> None:
    p = payment(status, payment_type)
    with pytest.raises(InvalidStateTransition):
        p.complete_internal(T0)
    assert (p.status, p.version, p.completed_at, p.events) == (status, 0, None, [])


def test_completing_twice_is_refused() -> None:
    p = payment(payment_type=PaymentType.INTERNAL_TRANSFER)
    p.complete_internal(T0)
    with pytest.raises(InvalidStateTransition):
        p.complete_internal(T0)
    with pytest.raises(InvalidStateTransition):
        p.transition(PaymentStatus.COMPLETED, T0)
    assert p.version == 1

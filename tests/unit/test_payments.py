"""core.payments: the state machine of API.md §6 and the event history that folds into the state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from core.clock import timestamp
from core.errors import InvalidStateTransition
from core.payments import (
    CANCELLED,
    COMPLETED,
    EXTERNAL_PAYMENT,
    FAILED,
    INTERNAL_TRANSFER,
    PARTIALLY_REFUNDED,
    PENDING,
    PROCESSING,
    REFUNDED,
    TRANSITIONS,
    Payment,
    fold,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
STATUSES = [PENDING, PROCESSING, COMPLETED, FAILED, CANCELLED, PARTIALLY_REFUNDED, REFUNDED]

#: API.md §6 written out independently of core.payments.TRANSITIONS.
ALLOWED = {
    (PENDING, PROCESSING), (PENDING, CANCELLED),
    (PROCESSING, COMPLETED), (PROCESSING, FAILED),
    (COMPLETED, PARTIALLY_REFUNDED), (COMPLETED, REFUNDED),
    (PARTIALLY_REFUNDED, PARTIALLY_REFUNDED), (PARTIALLY_REFUNDED, REFUNDED),
}
FORBIDDEN = sorted({(a, b) for a in STATUSES for b in STATUSES} - ALLOWED)


def payment(status: str = PENDING, payment_type: str = EXTERNAL_PAYMENT) -> Payment:
    return Payment(
        id=uuid4(), tenant_id=uuid4(), payment_type=payment_type, status=status, source_account_id=uuid4(),
        destination_account_id=uuid4() if payment_type == INTERNAL_TRANSFER else None, amount=1000,
        currency="USD", provider="stripe" if payment_type == EXTERNAL_PAYMENT else None,
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
    assert p.completed_at == (at if end == COMPLETED else None)
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
    p = payment(COMPLETED)
    assert p.transition(PARTIALLY_REFUNDED, T0, "payment.refunded_partially").type == "payment.refunded_partially"


def test_folding_the_events_gives_the_current_state() -> None:
    p = payment()
    p.record("payment.created", T0)
    p.transition(PROCESSING, T0 + timedelta(seconds=1))
    p.provider_reference = "ch_123"
    p.transition(COMPLETED, T0 + timedelta(seconds=2))
    p.refunded_amount = 400
    p.transition(PARTIALLY_REFUNDED, T0 + timedelta(seconds=3))
    p.refunded_amount = 1000
    p.transition(REFUNDED, T0 + timedelta(seconds=4))

    assert [e.sequence for e in p.events] == [0, 1, 2, 3, 4]
    assert [e.type for e in p.events] == [
        "payment.created", "payment.processing", "payment.completed", "payment.partially_refunded", "payment.refunded"]
    expected = {
        "status": REFUNDED, "refunded_amount": "10.00", "provider_reference": "ch_123", "failure_reason": None,
        "updated_at": timestamp(T0 + timedelta(seconds=4)), "completed_at": timestamp(T0 + timedelta(seconds=2)),
    }
    assert fold(p.events) == p.snapshot() == expected
    assert fold(list(reversed(p.events))) == expected  # fold orders by sequence, not by list position
    assert fold(p.events[:3])["status"] == COMPLETED


def test_failed_payment_folds_with_its_reason() -> None:
    p = payment()
    p.record("payment.created", T0)
    p.transition(PROCESSING, T0)
    p.failure_reason = "card_declined"
    p.transition(FAILED, T0 + timedelta(seconds=1))
    assert fold(p.events) == p.snapshot()
    assert fold(p.events)["failure_reason"] == "card_declined"
    assert fold(p.events)["completed_at"] is None


def test_complete_internal() -> None:
    p = payment(payment_type=INTERNAL_TRANSFER)
    p.record("payment.created", T0)
    at = T0 + timedelta(milliseconds=1)
    event = p.complete_internal(at)
    assert (p.status, p.version, p.updated_at, p.completed_at) == (COMPLETED, 1, at, at)
    assert (event.type, event.sequence) == ("payment.completed", 1)
    assert fold(p.events) == p.snapshot()


@pytest.mark.parametrize(
    ("status", "payment_type"),
    [(PENDING, EXTERNAL_PAYMENT), (PROCESSING, INTERNAL_TRANSFER), (COMPLETED, INTERNAL_TRANSFER),
     (CANCELLED, INTERNAL_TRANSFER)],
)
def test_complete_internal_only_from_a_pending_internal_transfer(status: str, payment_type: str) -> None:
    p = payment(status, payment_type)
    with pytest.raises(InvalidStateTransition):
        p.complete_internal(T0)
    assert (p.status, p.version, p.completed_at, p.events) == (status, 0, None, [])


def test_completing_twice_is_refused() -> None:
    p = payment(payment_type=INTERNAL_TRANSFER)
    p.complete_internal(T0)
    with pytest.raises(InvalidStateTransition):
        p.complete_internal(T0)
    with pytest.raises(InvalidStateTransition):
        p.transition(COMPLETED, T0)
    assert p.version == 1

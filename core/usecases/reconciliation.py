"""Reconcile a provider's settlement report for a UTC day with the ledger (API.md §12), and read the result.

The reports are fetched first, outside any transaction (ARCHITECTURE.md rule 10); matching, the stored
reconciliation and any late charge it finds then commit in one unit of work (with the Idempotency-Key's record,
for `POST /reconciliations`). A charge the provider took for a payment the ledger failed is recorded as a late
charge (`payment.late_charge_detected`, announced through the outbox) and the payment's own work refunds it:
the late-charge path of API.md §6 (`late_charges.py`), not a second mechanism. Likewise a refund the provider
settled that the ledger recorded `failed` (not declined) is announced (`refund.late_success_suspected`) and the
refund's own work looks it up and posts it: the late-refund path (`late_refunds.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from uuid import UUID

import attrs

from core.commands import Command
from core.errors import FieldError, ValidationFailed, found
from core.ids import new_id
from core.payments import PROVIDERS, PaymentStatus, late_charges
from core.ports import Clock, UnitOfWork, UnitOfWorkFactory
from core.providers import PaymentProvider, ProviderError
from core.reconciliation import (
    Booked,
    MatchResult,
    Reconciliation,
    ReconciliationStatus,
    Reports,
    Settled,
    day_bounds,
    match,
)
from core.usecases.announcements import announce_payment, announce_refund
from core.usecases.late_charges import LATE_DETECTED, LATE_REVERSED, reversal_id
from core.usecases.late_refunds import LATE_REFUND_SUSPECTED, may_have_succeeded, of_refund


@attrs.frozen(kw_only=True)
class Reconcile(Command):
    """Reconcile `provider`'s settlement report of the UTC day `day` for the tenant."""

    provider: str
    day: date


#: The first day a reconciliation may be asked for (no provider here settled anything before).
FIRST_DAY = date(2000, 1, 1)


def check_reconcile(cmd: Reconcile, *, today: date) -> None:
    """`ValidationFailed` for an unknown provider, or a day before `FIRST_DAY` or still to come (nothing has
    settled then). Today may be reconciled: its report holds what has settled so far."""
    errors = []
    if cmd.provider not in PROVIDERS:
        errors.append(FieldError("provider", f"must be one of {', '.join(PROVIDERS)}"))
    if not FIRST_DAY <= cmd.day <= today:
        errors.append(FieldError("date", f"must be a UTC day from {FIRST_DAY} to today ({today})"))
    if errors:
        raise ValidationFailed(errors)


async def fetch_reports(provider: PaymentProvider, day: date, *, today: date) -> Reports | ProviderError:
    """The provider's reports of `day` and of its neighbours (the midnight margins; one after `today` cannot
    hold anything and is not asked for), or the error that kept one from coming."""
    try:
        items = await provider.settlements(day)
        previous = await provider.settlements(day - timedelta(days=1))
        following = await provider.settlements(day + timedelta(days=1)) if day < today else []
    except ProviderError as error:
        return error
    return Reports(day=day, items=items, previous=previous, following=following)


async def record_reconciliation(
    cmd: Reconcile, reports: Reports | ProviderError, *, uow: UnitOfWork, clock: Clock, grace: timedelta,
) -> Reconciliation:
    """Match `reports` against the tenant's settlement entries within `grace` of the day and store the
    result in the caller's unit of work: `completed` with its counts and unmatched items, or `failed` when
    the reports did not come. Late charges it finds are recorded (see the module)."""
    now = clock.now()
    reconciliation = Reconciliation(id=new_id(), tenant_id=cmd.tenant_id, provider=cmd.provider, day=cmd.day,
                                    status=ReconciliationStatus.RUNNING, correlation_id=cmd.correlation_id,
                                    created_at=now)
    if isinstance(reports, ProviderError):
        reconciliation.fail(f"the settlement report could not be read: {reports.reason}", now)
    else:
        mine, owned = await _tenants_lines(uow, cmd.tenant_id, reports)
        start, end = day_bounds(cmd.day)
        booked = await uow.reconciliations.booked(cmd.tenant_id, cmd.provider, start - grace, end + grace)
        booked += await _reversed_late_charges(uow, cmd.tenant_id, mine.items, owned, {b.idempotency_key
                                                                                        for b in booked})
        counts, items = match(mine, booked, grace=grace, owned=frozenset(owned))
        reconciliation.complete(counts, items, now)
        # Payments locked in ascending ids, as a worker's group of completions locks several (no deadlock with it)
        for item in sorted(items, key=lambda line: line.payment_id.int if line.payment_id else 0):
            if item.result == MatchResult.MISSING_IN_LEDGER and item.kind == "charge" and item.payment_id:
                await _flag_late_charge(uow, cmd, item.payment_id, item.provider_reference, now)
            elif item.result == MatchResult.MISSING_IN_LEDGER and item.kind == "refund" and item.payment_id:
                await _flag_late_refund(uow, cmd, item.payment_id, item.idempotency_key, now)
    uow.reconciliations.add(reconciliation)
    return reconciliation


async def run_reconciliation(
    cmd: Reconcile, reports: Reports | ProviderError, *, uow_factory: UnitOfWorkFactory, clock: Clock,
    grace: timedelta,
) -> Reconciliation:
    """`record_reconciliation` in a unit of work of its own (the CLI and the worker's daily run)."""
    async with uow_factory() as uow:
        return await record_reconciliation(cmd, reports, uow=uow, clock=clock, grace=grace)


async def get_reconciliation(tenant_id: UUID, reconciliation_id: UUID, *, uow: UnitOfWork) -> Reconciliation:
    return found(await uow.reconciliations.get(tenant_id, reconciliation_id), f"reconciliation {reconciliation_id}")


async def _tenants_lines(uow: UnitOfWork, tenant_id: UUID, reports: Reports) -> tuple[Reports, set[str]]:
    """The reports without the lines of other tenants' payments (one provider account serves every tenant;
    a line of no payment at all, a stray, concerns every tenant), and the charge keys that are ours."""
    lines = [*reports.items, *reports.previous, *reports.following]
    owners = await uow.reconciliations.owners({key for line in lines if (key := _uuid(line.charge_key))})
    owned = {str(payment) for payment, owner in owners.items() if owner == tenant_id}
    theirs = {str(payment) for payment, owner in owners.items() if owner != tenant_id}

    def keep(chosen: Sequence[Settled]) -> list[Settled]:
        return [line for line in chosen if str(_uuid(line.charge_key)) not in theirs]

    return Reports(day=reports.day, items=keep(reports.items), previous=keep(reports.previous),
                   following=keep(reports.following)), owned


async def _reversed_late_charges(
    uow: UnitOfWork, tenant_id: UUID, lines: Sequence[Settled], owned: set[str], booked: set[str],
) -> list[Booked]:
    """A late charge of a failed payment and the refund that reversed it are in no settlement entry (the
    ledger returned the money when the payment failed), but the payment's history records both: they count
    as booked when the provider settled them."""
    found: list[Booked] = []
    for line in lines:
        if line.idempotency_key in booked or line.charge_key not in owned:
            continue
        payment = await uow.payments.get(tenant_id, UUID(line.charge_key))
        if payment is None or payment.status != PaymentStatus.FAILED:
            continue
        reversed_ = {e.data.get("charge_reference"): e.data.get("refund_reference")
                     for e in await uow.payments.events(tenant_id, payment.id) if e.type == LATE_REVERSED}
        charge = line.kind == "charge" and line.reference in reversed_
        refund = (line.kind == "refund" and line.charge_reference in reversed_
                  and line.idempotency_key == str(reversal_id(payment.id, line.charge_reference or "")))
        if charge or refund:
            found.append(Booked(kind=line.kind, idempotency_key=line.idempotency_key, payment_id=payment.id,
                                reference=line.reference if charge else reversed_[line.charge_reference],
                                amount=payment.amount, currency=payment.currency, booked_at=line.settled_at))
    return found


async def _flag_late_charge(
    uow: UnitOfWork, cmd: Reconcile, payment_id: UUID, reference: str | None, now: datetime,
) -> None:
    """A charge of a failed payment of ours, not known yet: recorded as a late charge, and announced, so that
    the payment's work (started by that event) refunds it."""
    payment = await uow.payments.lock(cmd.tenant_id, payment_id)
    if payment is None or payment.status != PaymentStatus.FAILED or payment.provider != cmd.provider \
            or reference is None:
        return
    if reference in late_charges(await uow.payments.events(cmd.tenant_id, payment_id)):
        return  # already owed or refunded: the late-charge path has it
    payment.note(LATE_DETECTED, now, charge_reference=reference, detected_by="reconciliation")
    uow.payments.save(payment)
    announce_payment(uow, payment, LATE_DETECTED, now, correlation_id=cmd.correlation_id)


async def _flag_late_refund(uow: UnitOfWork, cmd: Reconcile, payment_id: UUID, key: str, now: datetime) -> None:
    """A refund of ours recorded `failed` (not declined) that the provider settled: noted in the payment's history
    and announced once, so that the refund's work looks it up at the provider and posts it."""
    refund_id = _uuid(key)
    payment = await uow.payments.lock(cmd.tenant_id, payment_id)
    refund = await uow.refunds.lock(cmd.tenant_id, refund_id) if refund_id else None
    if payment is None or refund is None or refund.payment_id != payment.id or payment.provider != cmd.provider:
        return
    history = await uow.payments.events(cmd.tenant_id, payment.id)
    if not may_have_succeeded(history, refund) or of_refund(history, LATE_REFUND_SUSPECTED, refund):
        return  # not failed, or declined (the provider's own answer), or already announced
    payment.note(LATE_REFUND_SUSPECTED, now, refund=refund.summary(), detected_by="reconciliation")
    uow.payments.save(payment)
    announce_refund(uow, refund, LATE_REFUND_SUSPECTED, now)


def _uuid(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None

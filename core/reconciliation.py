"""Reconciliation: a provider's settlement report for one UTC day matched, item by item, against the ledger.

Both sides are keyed by the idempotency key the payment sent: the payment id for a charge, the refund id for a
refund. A report item with no ledger entry of that key is `missing_in_ledger`; one whose amount or currency
differs is `amount_mismatch`; a settlement entry of the day that no report names is `missing_at_provider`.

Midnight: the ledger records a settlement after the provider answered, so a charge the provider settled at
23:59:59 may be in the ledger at 00:00:01 the next day. The ledger side is therefore read `grace` wider on
both ends of the day: a report item matches an entry anywhere in that window, and an unmatched entry in a
margin belongs to the neighbour day. An unmatched entry of the day itself that the neighbour day's report
names, close enough to the boundary to be matched there, is left to that day's reconciliation too.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from uuid import UUID

import attrs

Kind = Literal["charge", "refund"]


class ReconciliationStatus(enum.StrEnum):
    """A reconciliation is `running` until its result is recorded, then `completed` (the report was read and
    matched, whatever it found) or `failed` (it could not be: the report did not come)."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class MatchResult(enum.StrEnum):
    """What became of one item (API.md §12)."""

    MATCHED = "matched"
    MISSING_IN_LEDGER = "missing_in_ledger"
    MISSING_AT_PROVIDER = "missing_at_provider"
    AMOUNT_MISMATCH = "amount_mismatch"


#: The results that are mismatches, in the order the summary and the metrics list them.
MISMATCHES = (MatchResult.MISSING_IN_LEDGER, MatchResult.MISSING_AT_PROVIDER, MatchResult.AMOUNT_MISMATCH)


@attrs.frozen(kw_only=True)
class Settled:
    """One line of a provider's settlement report: a charge or refund it settled, as it reports it."""

    kind: Kind
    idempotency_key: str  # the key this charge or refund was requested under
    charge_key: str  # the key of the charge: itself for a charge, the refunded charge's for a refund
    reference: str  # the provider's id of this charge or refund
    charge_reference: str | None = None  # for a refund, the provider's id of the charge it refunds
    amount: int  # minor units, positive
    currency: str
    settled_at: datetime


@attrs.frozen(kw_only=True)
class Booked:
    """One settlement entry of the ledger, as reconciliation sees it (a credit of the provider's settlement
    account is a charge, a debit a refund; `amount` is positive)."""

    kind: Kind
    idempotency_key: str
    payment_id: UUID
    reference: str | None
    amount: int
    currency: str
    booked_at: datetime


@attrs.frozen(kw_only=True)
class Item:
    """One unmatched item (matched ones are only counted)."""

    result: MatchResult = attrs.field(converter=MatchResult)
    kind: Kind
    idempotency_key: str
    payment_id: UUID | None
    provider_reference: str | None
    ledger_amount: int | None
    provider_amount: int | None
    currency: str
    provider_currency: str | None = None  # set only when the provider settled in another currency


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC day as [start, end)."""
    start = datetime.combine(day, time(), tzinfo=UTC)
    return start, start + timedelta(days=1)


@attrs.frozen(kw_only=True)
class Reports:
    """A provider's settlement reports for the day reconciled and its two neighbours (for the midnight margins;
    a neighbour still in the future is empty)."""

    day: date
    items: Sequence[Settled]
    previous: Sequence[Settled] = ()
    following: Sequence[Settled] = ()


def match(reports: Reports, booked: Iterable[Booked], *, grace: timedelta,
          owned: frozenset[str] = frozenset()) -> tuple[dict[MatchResult, int], list[Item]]:
    """Match the day's report against the settlement entries booked within `grace` of the day.

    `owned`: the charge keys that are payments of the tenant reconciled (the items naming them get a
    `payment_id`; report items of other tenants must have been left out by the caller). Returns the count of
    every result and the unmatched items, report order first, then the ledger's.
    """
    start, end = day_bounds(reports.day)
    by_key: dict[str, Booked] = {}
    for each in booked:
        if start - grace <= each.booked_at < end + grace:
            by_key[each.idempotency_key] = each
    counts = dict.fromkeys(MatchResult, 0)
    items: list[Item] = []
    used: set[str] = set()
    for line in reports.items:
        entry = by_key.get(line.idempotency_key)
        used.add(line.idempotency_key)
        payment_id = UUID(line.charge_key) if line.charge_key in owned else None
        if entry is None:
            result = MatchResult.MISSING_IN_LEDGER
        elif (entry.amount, entry.currency) != (line.amount, line.currency):
            result = MatchResult.AMOUNT_MISMATCH
        else:
            counts[MatchResult.MATCHED] += 1
            continue
        counts[result] += 1
        items.append(Item(result=result, kind=line.kind, idempotency_key=line.idempotency_key,
                          payment_id=entry.payment_id if entry else payment_id, provider_reference=line.reference,
                          ledger_amount=entry.amount if entry else None, provider_amount=line.amount,
                          currency=entry.currency if entry else line.currency,
                          provider_currency=line.currency if entry and entry.currency != line.currency else None))
    before = {line.idempotency_key for line in reports.previous}
    after = {line.idempotency_key for line in reports.following}
    for key, entry in by_key.items():
        if key in used or not start <= entry.booked_at < end:
            continue  # matched, or in a margin: the neighbour day's
        if (key in before and entry.booked_at < start + grace) or (key in after and entry.booked_at >= end - grace):
            continue  # the neighbour day's report has it, and its reconciliation matches it
        counts[MatchResult.MISSING_AT_PROVIDER] += 1
        items.append(Item(result=MatchResult.MISSING_AT_PROVIDER, kind=entry.kind, idempotency_key=key,
                          payment_id=entry.payment_id, provider_reference=entry.reference,
                          ledger_amount=entry.amount, provider_amount=None, currency=entry.currency))
    return counts, items


@attrs.define(kw_only=True)
class Reconciliation:
    """One run of a reconciliation for a tenant, a provider and a UTC day: its status, counts and unmatched
    items."""

    id: UUID
    tenant_id: UUID
    provider: str
    day: date
    status: ReconciliationStatus = attrs.field(converter=ReconciliationStatus)
    summary: dict[MatchResult, int] = attrs.field(factory=lambda: dict.fromkeys(MatchResult, 0))
    items: list[Item] = attrs.field(factory=list)
    failure_reason: str | None = None
    correlation_id: str | None = None
    created_at: datetime
    completed_at: datetime | None = None

    @property
    def mismatches(self) -> int:
        """How many items did not match (0 for a run that failed: it matched nothing)."""
        return sum(self.summary[result] for result in MISMATCHES)

    def complete(self, counts: dict[MatchResult, int], items: list[Item], at: datetime) -> None:
        self.status, self.summary, self.items, self.completed_at = ReconciliationStatus.COMPLETED, counts, items, at

    def fail(self, reason: str, at: datetime) -> None:
        self.status, self.failure_reason, self.completed_at = ReconciliationStatus.FAILED, reason[:1000], at

"""Batches of transfers (API.md §10): what each transfer of a batch came to, and the batch as answered."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import attrs

from core.errors import CoreError, FieldError
from core.payments import Payment

#: API.md §10: a batch holds 1 to 1,000 transfers; a transfer's `reference` is at most 64 characters.
MAX_TRANSFERS = 1000
MAX_REFERENCE = 64


def limit_problems(references: Sequence[str | None]) -> list[FieldError]:
    """What breaks API.md §10's limits in a batch whose transfers carry `references`: their number (1 to
    1,000), and each reference's length (at most 64 characters)."""
    problems = []
    if not 1 <= len(references) <= MAX_TRANSFERS:
        problems.append(FieldError("transfers", f"must hold 1 to {MAX_TRANSFERS} transfers"))
    problems += [FieldError(f"transfers[{index}].reference", f"must be at most {MAX_REFERENCE} characters")
                 for index, reference in enumerate(references)
                 if reference is not None and len(reference) > MAX_REFERENCE]
    return problems


class BatchStatus(enum.StrEnum):
    """How a batch ended: every transfer made (always so for an atomic batch that is answered 201), some
    of them (non-atomic), or none (non-atomic: each transfer failed on its own)."""

    COMPLETED = "completed"
    PARTIALLY_COMPLETED = "partially_completed"
    FAILED = "failed"


@attrs.frozen(kw_only=True)
class LegResult:
    """One transfer of a batch: the payment it made, or the error that refused it (exactly one of them)."""

    index: int
    reference: str | None
    payment: Payment | None = None
    error: CoreError | None = None


@attrs.frozen(kw_only=True)
class BalanceChange:
    """An account a batch moves money on: its balance before the batch and after it (minor units)."""

    account_id: UUID
    currency: str
    before: int
    after: int


@attrs.frozen(kw_only=True)
class BatchResult:
    """What running a batch came to; `id` is None for a dry run, which stores nothing."""

    id: UUID | None
    atomic: bool
    dry_run: bool
    results: tuple[LegResult, ...]
    balances: tuple[BalanceChange, ...]
    created_at: datetime

    @property
    def status(self) -> BatchStatus:
        made = sum(1 for result in self.results if result.payment is not None)
        if made == len(self.results):
            return BatchStatus.COMPLETED
        return BatchStatus.PARTIALLY_COMPLETED if made else BatchStatus.FAILED


@attrs.frozen(kw_only=True)
class Batch:
    """A batch as stored: its answer (`view`, the response body) is what `GET /batches/{id}` shows again."""

    id: UUID
    tenant_id: UUID
    atomic: bool
    status: BatchStatus = attrs.field(converter=BatchStatus)
    transfers: int
    view: dict[str, Any]
    created_at: datetime

"""The shapes of /api/v1/batches (API.md §10)."""

from __future__ import annotations

import attrs

from app.http.schemas.fields import MONEY_OUT, TIME, UUID
from app.http.schemas.payments import Payment, TransferRequest
from core.batches import MAX_REFERENCE, MAX_TRANSFERS, BatchStatus

_REFERENCE = {"openapi": {"maxLength": MAX_REFERENCE,
                          "description": "The caller's own name for this transfer, echoed in its result"}}
_TRANSFERS = {"openapi": {"minItems": 1, "maxItems": MAX_TRANSFERS}}


@attrs.frozen(kw_only=True)
class BatchTransferRequest(TransferRequest):
    """A transfer of a batch: the body of `POST /transfers` and an optional `reference`."""

    reference: str | None = attrs.field(default=None, metadata=_REFERENCE)


@attrs.frozen(kw_only=True)
class BatchRequest:
    __openapi_strict__ = True
    atomic: bool = attrs.field(default=True, metadata={"openapi": {
        "description": "true: all the transfers or none (201, or 422 batch_failed); false: each on its own (200)"}})
    dry_run: bool = attrs.field(default=False, metadata={"openapi": {
        "description": "Check and compute everything, write nothing, consume no id (200, id null)"}})
    transfers: list[BatchTransferRequest] = attrs.field(metadata=_TRANSFERS)


@attrs.frozen(kw_only=True)
class DraftPayment(Payment):
    """A Payment as a dry run shows it: everything the real run would record but its `id`."""

    __openapi_omit__ = frozenset({"id"})
    __openapi_example__ = None  # Payment's has an id


@attrs.frozen(kw_only=True)
class TransferProblem:
    """Why one transfer of a non-atomic batch failed: the problem it alone would have answered."""

    type: str
    title: str
    status: int
    detail: str


@attrs.frozen(kw_only=True)
class BatchTransferResult:
    """One transfer's result: 201 and its `payment`, or a 4xx status and its `error`."""

    index: int
    reference: str | None
    status: int
    payment: Payment | DraftPayment | None = None
    error: TransferProblem | None = None


@attrs.frozen(kw_only=True)
class BalanceChange:
    account_id: str = attrs.field(metadata=UUID)
    balance_before: str = attrs.field(metadata=MONEY_OUT)
    balance_after: str = attrs.field(metadata=MONEY_OUT)


@attrs.frozen(kw_only=True)
class Batch:
    id: str | None = attrs.field(metadata={"openapi": {"format": "uuid",
                                                       "description": "null for a dry run (nothing was stored)"}})
    atomic: bool
    dry_run: bool
    status: BatchStatus
    results: list[BatchTransferResult]
    created_at: str = attrs.field(metadata=TIME)
    balances: list[BalanceChange] | None = attrs.field(default=None, metadata={"openapi": {
        "description": "Dry runs only: each account's balance before and after the batch"}})

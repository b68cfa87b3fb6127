"""The asynchronous client's accounts, transfers, payments, refunds, holds and batches."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from app.http.schemas.accounts import (
    Account,
    Balance,
    CreateAccountRequest,
    LedgerEntry,
    Statement,
    UpdateAccountRequest,
)
from app.http.schemas.batches import Batch, BatchRequest, BatchTransferRequest
from app.http.schemas.holds import CaptureRequest, Hold, HoldRequest
from app.http.schemas.payments import (
    Payment,
    PaymentEvent,
    PaymentEvents,
    PaymentRequest,
    Refund,
    RefundRequest,
    TransferRequest,
)
from app.http.schemas.statuses import AccountStatus
from payments.client.aio_transport import AsyncTransport
from payments.client.codec import amount as _amount
from payments.client.routes import ROUTES, Page

Amount = Decimal | str | int
Time = datetime | str


class AsyncAccounts:
    """`/api/v1/accounts` (API.md §3)."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport

    async def create(self, *, user_id: str, currency: str, initial_balance: Amount | None = None,
                     metadata: dict[str, str] | None = None, idempotency_key: str | None = None) -> Account:
        body = CreateAccountRequest(user_id=user_id, currency=currency, metadata=metadata, initial_balance=(
            None if initial_balance is None else _amount(initial_balance)))
        return await self._t.call(ROUTES["createAccount"], Account, body=body, idempotency_key=idempotency_key)

    async def get(self, account_id: str) -> Account:
        return await self._t.call(ROUTES["getAccount"], Account, path={"account_id": account_id})

    async def update(self, account_id: str, *, metadata: dict[str, str] | None = None,
                     status: AccountStatus | str | None = None, overdraft_limit: Amount | None = None,
                     idempotency_key: str | None = None) -> Account:
        body = UpdateAccountRequest(metadata=metadata, status=None if status is None else AccountStatus(status),
                                    overdraft_limit=None if overdraft_limit is None else _amount(overdraft_limit))
        return await self._t.call(ROUTES["updateAccount"], Account, path={"account_id": account_id}, body=body,
                                  idempotency_key=idempotency_key)

    async def list(self, *, user_id: str | None = None, status: str | None = None,
                   metadata: dict[str, str] | None = None, limit: int | None = None,
                   cursor: str | None = None) -> Page[Account]:
        params = {"user_id": user_id, "status": status, "metadata": metadata, "limit": limit, "cursor": cursor}
        return await self._t.page(ROUTES["listAccounts"], Account, params=params)

    def iterate(self, *, user_id: str | None = None, status: str | None = None,
                metadata: dict[str, str] | None = None) -> AsyncIterator[Account]:
        """Every account matching the filters, newest first, across all pages."""
        params = {"user_id": user_id, "status": status, "metadata": metadata}
        return self._t.every(ROUTES["listAccounts"], Account, params=params)

    async def balance(self, account_id: str, *, at: Time | None = None) -> Balance:
        return await self._t.call(ROUTES["getBalance"], Balance, path={"account_id": account_id},
                                  params={"at": at})

    async def statement(self, account_id: str, *, from_: Time, to: Time) -> Statement:
        return await self._t.call(ROUTES["getStatement"], Statement, path={"account_id": account_id},
                                  params={"from": from_, "to": to})

    async def statement_csv(self, account_id: str, *, from_: Time, to: Time) -> str:
        """The statement as `text/csv`: a header row, then one row per entry."""
        answer = await self._t.send(ROUTES["getStatement"], path={"account_id": account_id},
                                    params={"from": from_, "to": to, "format": "csv"})
        return answer.text

    async def transactions(self, account_id: str, *, limit: int | None = None,
                           cursor: str | None = None) -> Page[LedgerEntry]:
        return await self._t.page(ROUTES["listTransactions"], LedgerEntry, path={"account_id": account_id},
                                  params={"limit": limit, "cursor": cursor})

    def iterate_transactions(self, account_id: str) -> AsyncIterator[LedgerEntry]:
        """Every ledger entry of the account, newest first, across all pages."""
        return self._t.every(ROUTES["listTransactions"], LedgerEntry, path={"account_id": account_id})


class AsyncTransfers:
    """`POST /api/v1/transfers` (API.md §5)."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport

    async def create(self, *, source_account_id: str, destination_account_id: str, amount: Amount, currency: str,
                     description: str | None = None, metadata: dict[str, str] | None = None,
                     idempotency_key: str | None = None) -> Payment:
        """Move `amount` now; answers the completed `internal_transfer` payment."""
        body = TransferRequest(source_account_id=source_account_id, destination_account_id=destination_account_id,
                               amount=_amount(amount), currency=currency, description=description, metadata=metadata)
        return await self._t.call(ROUTES["createTransfer"], Payment, body=body, idempotency_key=idempotency_key)


class AsyncPayments:
    """`/api/v1/payments` (API.md §6)."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport

    async def create(self, *, payment_type: Literal["internal_transfer", "external_payment"],
                     source_account_id: str, amount: Amount, currency: str,
                     destination_account_id: str | None = None, provider: Literal["stripe", "paypal"] | None = None,
                     description: str | None = None, metadata: dict[str, str] | None = None,
                     idempotency_key: str | None = None) -> Payment:
        """An external payment answers `pending` (the worker settles it); an internal transfer `completed`."""
        body = PaymentRequest(payment_type=payment_type, source_account_id=source_account_id,
                              destination_account_id=destination_account_id, amount=_amount(amount),
                              currency=currency, provider=provider, description=description, metadata=metadata)
        return await self._t.call(ROUTES["createPayment"], Payment, body=body, idempotency_key=idempotency_key)

    async def get(self, payment_id: str) -> Payment:
        return await self._t.call(ROUTES["getPayment"], Payment, path={"payment_id": payment_id})

    async def list(self, *, status: str | None = None, payment_type: str | None = None,
                   account_id: str | None = None, provider: str | None = None, created_after: Time | None = None,
                   created_before: Time | None = None, metadata: dict[str, str] | None = None,
                   limit: int | None = None, cursor: str | None = None) -> Page[Payment]:
        params = {"status": status, "payment_type": payment_type, "account_id": account_id, "provider": provider,
                  "created_after": created_after, "created_before": created_before, "metadata": metadata,
                  "limit": limit, "cursor": cursor}
        return await self._t.page(ROUTES["listPayments"], Payment, params=params)

    def iterate(self, *, status: str | None = None, payment_type: str | None = None,
                account_id: str | None = None, provider: str | None = None, created_after: Time | None = None,
                created_before: Time | None = None, metadata: dict[str, str] | None = None) -> AsyncIterator[Payment]:
        """Every payment matching the filters, newest first, across all pages."""
        params = {"status": status, "payment_type": payment_type, "account_id": account_id, "provider": provider,
                  "created_after": created_after, "created_before": created_before, "metadata": metadata}
        return self._t.every(ROUTES["listPayments"], Payment, params=params)

    async def cancel(self, payment_id: str, *, idempotency_key: str | None = None) -> Payment:
        """Cancel a `pending` payment; its money goes back to the source."""
        return await self._t.call(ROUTES["cancelPayment"], Payment, path={"payment_id": payment_id},
                                  idempotency_key=idempotency_key)

    async def events(self, payment_id: str) -> Sequence[PaymentEvent]:
        """The payment's whole event history, in order."""
        history = await self._t.call(ROUTES["listPaymentEvents"], PaymentEvents, path={"payment_id": payment_id})
        return history.data


class AsyncRefunds:
    """`/api/v1/payments/{id}/refund` and `/refunds` (API.md §6)."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport

    async def create(self, payment_id: str, *, amount: Amount | None = None, reason: str | None = None,
                     idempotency_key: str | None = None) -> Refund:
        """Refund `amount` (default: all not yet refunded); `pending` for an external payment."""
        body = RefundRequest(amount=None if amount is None else _amount(amount), reason=reason)
        return await self._t.call(ROUTES["refundPayment"], Refund, path={"payment_id": payment_id}, body=body,
                                  idempotency_key=idempotency_key)

    async def list(self, payment_id: str, *, limit: int | None = None, cursor: str | None = None) -> Page[Refund]:
        return await self._t.page(ROUTES["listRefunds"], Refund, path={"payment_id": payment_id},
                                  params={"limit": limit, "cursor": cursor})

    def iterate(self, payment_id: str) -> AsyncIterator[Refund]:
        """Every refund of the payment, across all pages."""
        return self._t.every(ROUTES["listRefunds"], Refund, path={"payment_id": payment_id})


class AsyncHolds:
    """`/api/v1/holds` (API.md §9)."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport

    async def create(self, *, source_account_id: str, destination_account_id: str, amount: Amount, currency: str,
                     expires_in: int | None = None, description: str | None = None,
                     metadata: dict[str, str] | None = None, idempotency_key: str | None = None) -> Hold:
        body = HoldRequest(source_account_id=source_account_id, destination_account_id=destination_account_id,
                           amount=_amount(amount), currency=currency, expires_in=expires_in,
                           description=description, metadata=metadata)
        return await self._t.call(ROUTES["createHold"], Hold, body=body, idempotency_key=idempotency_key)

    async def get(self, hold_id: str) -> Hold:
        return await self._t.call(ROUTES["getHold"], Hold, path={"hold_id": hold_id})

    async def list(self, *, account_id: str | None = None, status: str | None = None,
                   metadata: dict[str, str] | None = None, limit: int | None = None,
                   cursor: str | None = None) -> Page[Hold]:
        params = {"account_id": account_id, "status": status, "metadata": metadata, "limit": limit, "cursor": cursor}
        return await self._t.page(ROUTES["listHolds"], Hold, params=params)

    def iterate(self, *, account_id: str | None = None, status: str | None = None,
                metadata: dict[str, str] | None = None) -> AsyncIterator[Hold]:
        """Every hold matching the filters, across all pages."""
        return self._t.every(ROUTES["listHolds"], Hold,
                             params={"account_id": account_id, "status": status, "metadata": metadata})

    async def capture(self, hold_id: str, *, amount: Amount | None = None,
                      idempotency_key: str | None = None) -> Hold:
        """Capture `amount` (default: all of it) as a completed transfer; the rest is released."""
        body = CaptureRequest(amount=None if amount is None else _amount(amount))
        return await self._t.call(ROUTES["captureHold"], Hold, path={"hold_id": hold_id}, body=body,
                                  idempotency_key=idempotency_key)

    async def void(self, hold_id: str, *, idempotency_key: str | None = None) -> Hold:
        return await self._t.call(ROUTES["voidHold"], Hold, path={"hold_id": hold_id},
                                  idempotency_key=idempotency_key)


class AsyncBatches:
    """`/api/v1/batches` (API.md §10)."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport

    async def create(self, transfers: Sequence[BatchTransferRequest | Mapping[str, Any]], *, atomic: bool = True,
                     dry_run: bool = False, idempotency_key: str | None = None) -> Batch:
        """Up to 1,000 transfers, each a `BatchTransferRequest` or a mapping of its fields (a `POST /transfers`
        body and an optional `reference`). An atomic batch that would fail raises `BatchFailed`."""
        legs = [leg if isinstance(leg, BatchTransferRequest)
                else BatchTransferRequest(**{**leg, "amount": _amount(leg["amount"])}) for leg in transfers]
        body = BatchRequest(atomic=atomic, dry_run=dry_run, transfers=legs)
        return await self._t.call(ROUTES["createBatch"], Batch, body=body, idempotency_key=idempotency_key)

    async def get(self, batch_id: str) -> Batch:
        return await self._t.call(ROUTES["getBatch"], Batch, path={"batch_id": batch_id})

"""/api/v1/transfers and /api/v1/payments: synchronous transfers and payments."""

from __future__ import annotations

from http import HTTPStatus
from uuid import UUID

import attrs
from sanic import Blueprint, HTTPResponse, Request

from app.http.context import request_id, services, tenant_id
from app.http.endpoints import COMMON, LIST, METADATA, MOVEMENT, links_to, operation, read_page, write
from app.http.io import FieldChecks, list_params, metadata_filter, parse_uuid, query, read
from app.http.openapi import Operation
from app.http.payment_filters import PAYMENT_FILTERS, payment_filter
from app.http.schemas.holds import HoldRequest
from app.http.schemas.payments import (
    CancelRequest,
    Payment,
    PaymentEvents,
    PaymentRequest,
    Refund,
    RefundRequest,
    TransferRequest,
)
from core.accounts import check_metadata
from core.errors import FieldError, ValidationFailed
from core.money import Money, check_currency, parse_amount
from core.refunds import RefundStatus
from core.usecases.external_payments import CreateExternalPayment, cancel_payment, create_external_payment
from core.usecases.payments import get_payment, list_payment_events, list_payments
from core.usecases.refund_requests import RequestRefund, check_refund_amount, list_refunds, request_refund
from core.usecases.transfers import MakeTransfer, make_transfer
from core.views import event_view, payment_view, refund_view

bp = Blueprint("payments", url_prefix="/api/v1")
_ONE = "/api/v1/payments/{payment_id}"


def transfer_command(request: Request, body: TransferRequest | PaymentRequest) -> MakeTransfer:
    """Validate every field, reporting all problems at once."""
    checks = FieldChecks()
    source, amount, metadata = money_fields(checks, body)
    destination = checks.check(parse_uuid, body.destination_account_id, "destination_account_id")
    checks.done()
    assert source and destination and amount and metadata is not None
    return MakeTransfer(
        tenant_id=tenant_id(request), source_account_id=source, destination_account_id=destination,
        amount=amount, description=body.description, metadata=metadata, correlation_id=request_id(request),
    )


def money_fields(
    checks: FieldChecks, body: TransferRequest | PaymentRequest | HoldRequest
) -> tuple[UUID | None, Money | None, dict[str, str] | None]:
    """The source account, amount (in its currency) and metadata every movement of money carries."""
    source = checks.check(parse_uuid, body.source_account_id, "source_account_id")
    currency = checks.check(check_currency, body.currency)
    amount = checks.check(parse_amount, body.amount, currency) if currency else None
    metadata = checks.check(check_metadata, body.metadata)
    if body.description is not None and len(body.description) > 1000:
        checks.fail("description", "must be at most 1000 characters")
    return source, amount, metadata


async def _transfer(request: Request, cmd: MakeTransfer) -> HTTPResponse:
    clock = services(request).clock
    return await write(request, lambda uow: make_transfer(cmd, uow=uow, clock=clock), payment_view,
                       lock_accounts=cmd.locked_accounts, grouped=True)


@operation(bp, Operation(method="post", path="/api/v1/transfers", summary="Transfer between two accounts",
                         tag="transfers", operation_id="createTransfer",
                         links=links_to("payment_id", "getPayment", "listPaymentEvents", "listRefunds",
                                        "refundPayment"),
                         problems=MOVEMENT, request=TransferRequest, response=Payment,
                         response_status=201, idempotency="required", errors=(404, 409, *COMMON)))
async def create_transfer(request: Request, body: TransferRequest) -> HTTPResponse:
    return await _transfer(request, transfer_command(request, body))


@operation(bp, Operation(method="post", path="/api/v1/payments",
                         summary="Create a payment (internal: 201 completed; external: 202 pending)", tag="payments",
                         operation_id="createPayment",
                         links=links_to("payment_id", "getPayment", "listPaymentEvents", "cancelPayment"),
                         problems=MOVEMENT, request=PaymentRequest, response=Payment, response_status=201,
                         also=(202,), idempotency="required", errors=(404, 409, *COMMON)))
async def create_payment(request: Request, body: PaymentRequest) -> HTTPResponse:
    if body.payment_type == "internal_transfer":
        if body.provider is not None:
            raise ValidationFailed([FieldError("provider", "must be absent for an internal transfer")])
        if body.destination_account_id is None:
            raise ValidationFailed([FieldError("destination_account_id", "is required for an internal transfer")])
        return await _transfer(request, transfer_command(request, body))
    cmd, clock = external_command(request, body), services(request).clock
    # grouped: creations waiting together share one transaction (the group commit), as transfers do; a refused
    # creation changes nothing (every check runs before the posting)
    return await write(request, lambda uow: create_external_payment(cmd, uow=uow, clock=clock), payment_view,
                       status=lambda _: HTTPStatus.ACCEPTED,  # pending until the provider answers
                       lock_accounts=cmd.locked_accounts, grouped=True)


def external_command(request: Request, body: PaymentRequest) -> CreateExternalPayment:
    checks = FieldChecks()
    if body.destination_account_id is not None:
        checks.fail("destination_account_id", "must be absent for an external payment")
    if body.provider is None:
        checks.fail("provider", "is required for an external payment (stripe or paypal)")
    source, amount, metadata = money_fields(checks, body)
    checks.done()
    assert source and amount and metadata is not None and body.provider
    return CreateExternalPayment(
        tenant_id=tenant_id(request), source_account_id=source, amount=amount, provider=body.provider,
        description=body.description, metadata=metadata, correlation_id=request_id(request),
    )


@operation(bp, Operation(method="get", path="/api/v1/payments", summary="List payments", tag="payments",
                         operation_id="listPayments", response=Payment, list_response=True,
                         query=(*PAYMENT_FILTERS, METADATA, *LIST), errors=(422, *COMMON)))
async def index(request: Request) -> HTTPResponse:
    params = list_params(request)
    where = attrs.evolve(payment_filter(request.get_args(keep_blank_values=True)), metadata=metadata_filter(request))
    return await read_page(
        request, lambda uow: list_payments(tenant_id(request), where, uow=uow, **params), payment_view)


@operation(bp, Operation(method="post", path=f"{_ONE}/cancel", summary="Cancel a pending payment", tag="payments",
                         operation_id="cancelPayment",
                         problems=("not_found", "invalid_state_transition"),
                         request=CancelRequest, body_optional=True, response=Payment,
                         idempotency="optional", errors=(404, 409, *COMMON)))
async def cancel(request: Request, payment_id: UUID, body: CancelRequest) -> HTTPResponse:
    tenant, correlation, clock = tenant_id(request), request_id(request), services(request).clock
    return await write(
        request, lambda uow: cancel_payment(tenant, payment_id, uow=uow, clock=clock, correlation_id=correlation),
        payment_view)


@operation(bp, Operation(method="post", path=f"{_ONE}/refund",
                         summary="Refund a payment (external: 202 pending; internal transfer: 201 succeeded)",
                         tag="payments", operation_id="refundPayment",
                         problems=("not_found", "invalid_state_transition", "refund_exceeds_payment",
                                   "insufficient_funds", "account_closed"),
                         request=RefundRequest, body_optional=True,
                         response=Refund, response_status=202, also=(201,), idempotency="required",
                         errors=(404, 409, *COMMON)))
async def refund(request: Request, payment_id: UUID, body: RefundRequest) -> HTTPResponse:
    if body.reason is not None and len(body.reason) > 1000:
        raise ValidationFailed([FieldError("reason", "must be at most 1000 characters")])
    tenant, amount = tenant_id(request), body.amount
    if amount is not None:  # a malformed amount is refused before the key is claimed: a fix may reuse it
        await read(request, lambda uow: check_refund_amount(tenant, payment_id, amount, uow=uow))
    cmd = RequestRefund(tenant_id=tenant, payment_id=payment_id, amount=amount, reason=body.reason,
                        correlation_id=request_id(request))
    clock = services(request).clock
    return await write(request, lambda uow: request_refund(cmd, uow=uow, clock=clock), refund_view,
                       status=lambda r: HTTPStatus.ACCEPTED if r.status == RefundStatus.PENDING else HTTPStatus.CREATED)


@operation(bp, Operation(method="get", path=f"{_ONE}/refunds", summary="A payment's refunds", tag="payments",
                         operation_id="listRefunds",
                         problems=("not_found",), response=Refund, list_response=True, query=LIST,
                         errors=(404, 422, *COMMON)))
async def refunds(request: Request, payment_id: UUID) -> HTTPResponse:
    params = list_params(request)
    return await read_page(
        request, lambda uow: list_refunds(tenant_id(request), payment_id, uow=uow, **params), refund_view)


@operation(bp, Operation(method="get", path=_ONE, summary="Get a payment", tag="payments", operation_id="getPayment",
                         problems=("not_found",),
                         response=Payment, errors=(404, *COMMON)))
async def show(request: Request, payment_id: UUID) -> HTTPResponse:
    return await query(request, lambda uow: get_payment(tenant_id(request), payment_id, uow=uow), payment_view)


@operation(bp, Operation(method="get", path=f"{_ONE}/events", summary="A payment's event history", tag="payments",
                         operation_id="listPaymentEvents",
                         problems=("not_found",), response=PaymentEvents, errors=(404, *COMMON)))
async def events(request: Request, payment_id: UUID) -> HTTPResponse:
    return await query(request, lambda uow: list_payment_events(tenant_id(request), payment_id, uow=uow),
                       lambda history: {"data": [event_view(event) for event in history]})

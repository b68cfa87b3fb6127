"""/api/v1/transfers and /api/v1/payments: synchronous transfers and payments."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from sanic import Blueprint, HTTPResponse, Request

from app.http.auth import secured
from app.http.io import (
    FieldChecks,
    execute,
    list_params,
    ok,
    page_view,
    parse_time,
    parse_uuid,
    query,
    read_json,
    require_idempotency_key,
)
from app.http.schemas import CancelRequest, PaymentRequest, RefundRequest, TransferRequest, parse_body
from core.accounts import check_metadata
from core.errors import FieldError, ValidationFailed
from core.money import Money, check_currency, parse_amount
from core.payments import EXTERNAL_PAYMENT, INTERNAL_TRANSFER, PROVIDERS, Payment
from core.ports import PaymentFilter, UnitOfWork
from core.refunds import Refund
from core.usecases.external import CreateExternalPayment, cancel_payment, create_external_payment
from core.usecases.payments import get_payment, list_payment_events, list_payments
from core.usecases.refunds import RequestRefund, list_refunds, request_refund
from core.usecases.transfers import MakeTransfer, make_transfer
from core.views import event_view, payment_view, refund_view

bp = Blueprint("payments", url_prefix="/api/v1")


def transfer_command(request: Request, body: TransferRequest | PaymentRequest) -> MakeTransfer:
    """Validate every field, reporting all problems at once."""
    checks = FieldChecks()
    source, amount, metadata = money_fields(checks, body)
    destination = checks.check(parse_uuid, body.destination_account_id, "destination_account_id")
    checks.done()
    assert source and destination and amount and metadata is not None
    return MakeTransfer(
        tenant_id=request.ctx.principal.tenant_id, source_account_id=source, destination_account_id=destination,
        amount=amount, description=body.description, metadata=metadata, correlation_id=request.ctx.request_id,
    )


def money_fields(
    checks: FieldChecks, body: TransferRequest | PaymentRequest
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
    clock = request.app.ctx.container.clock

    async def work(uow: UnitOfWork) -> Payment:
        return await make_transfer(cmd, uow=uow, clock=clock)

    return await execute(request, work, lambda payment: ok(201, payment_view(payment)), idempotency="required")


@bp.post("/transfers")
@secured("write")
async def create_transfer(request: Request) -> HTTPResponse:
    require_idempotency_key(request)
    body: TransferRequest = parse_body(read_json(request), TransferRequest)
    return await _transfer(request, transfer_command(request, body))


@bp.post("/payments")
@secured("write")
async def create_payment(request: Request) -> HTTPResponse:
    require_idempotency_key(request)
    body: PaymentRequest = parse_body(read_json(request), PaymentRequest)
    if body.payment_type == "internal_transfer":
        if body.provider is not None:
            raise ValidationFailed([FieldError("provider", "must be absent for an internal transfer")])
        if body.destination_account_id is None:
            raise ValidationFailed([FieldError("destination_account_id", "is required for an internal transfer")])
        return await _transfer(request, transfer_command(request, body))
    cmd = external_command(request, body)
    clock = request.app.ctx.container.clock

    async def work(uow: UnitOfWork) -> Payment:
        return await create_external_payment(cmd, uow=uow, clock=clock)

    return await execute(request, work, lambda payment: ok(202, payment_view(payment)), idempotency="required")


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
        tenant_id=request.ctx.principal.tenant_id, source_account_id=source, amount=amount, provider=body.provider,
        description=body.description, metadata=metadata, correlation_id=request.ctx.request_id,
    )


@bp.get("/payments")
@secured("read", query=("status", "payment_type", "account_id", "provider", "created_after", "created_before",
                        "limit", "cursor"))
async def index(request: Request) -> HTTPResponse:
    limit, cursor = list_params(request)
    where = payment_filter(request.get_args(keep_blank_values=True))
    tenant_id = request.ctx.principal.tenant_id
    return await query(
        request,
        lambda uow: list_payments(tenant_id, where, uow=uow, limit=limit, cursor=cursor),
        lambda page: page_view(page, payment_view),
    )


_STATUSES = ("pending", "processing", "completed", "failed", "cancelled", "partially_refunded", "refunded")
_CHOICES = {"status": _STATUSES, "payment_type": (INTERNAL_TRANSFER, EXTERNAL_PAYMENT), "provider": PROVIDERS}


def payment_filter(args: Mapping[str, Any]) -> PaymentFilter:
    """The list filters of API.md §6, each checked; all problems reported at once."""
    values: dict[str, str] = {name: str(args.get(name)) for name in args}  # Sanic's args: first value of each
    checks = FieldChecks()
    for name, allowed in _CHOICES.items():
        if name in values and values[name] not in allowed:
            checks.fail(name, f"must be one of {', '.join(allowed)}")
    account = checks.check(parse_uuid, values["account_id"], "account_id") if "account_id" in values else None
    after = checks.check(parse_time, values["created_after"], "created_after") if "created_after" in values else None
    before = (checks.check(parse_time, values["created_before"], "created_before")
              if "created_before" in values else None)
    checks.done()
    return PaymentFilter(status=values.get("status"), payment_type=values.get("payment_type"), account_id=account,
                         provider=values.get("provider"), created_after=after, created_before=before)


@bp.post("/payments/<payment_id:uuid>/cancel")
@secured("write")
async def cancel(request: Request, payment_id: UUID) -> HTTPResponse:
    if request.body:
        parse_body(read_json(request), CancelRequest)
    tenant_id, request_id = request.ctx.principal.tenant_id, request.ctx.request_id
    clock = request.app.ctx.container.clock

    async def work(uow: UnitOfWork) -> Payment:
        return await cancel_payment(tenant_id, payment_id, uow=uow, clock=clock, correlation_id=request_id)

    return await execute(request, work, lambda payment: ok(200, payment_view(payment)), idempotency="optional")


@bp.post("/payments/<payment_id:uuid>/refund")
@secured("write")
async def refund(request: Request, payment_id: UUID) -> HTTPResponse:
    require_idempotency_key(request)
    body: RefundRequest = parse_body(read_json(request) if request.body else {}, RefundRequest)
    if body.reason is not None and len(body.reason) > 1000:
        raise ValidationFailed([FieldError("reason", "must be at most 1000 characters")])
    if body.amount is not None:  # a malformed amount is refused before the key is claimed: a fix may reuse it
        async with request.app.ctx.container.uow(read_only=True) as uow:
            payment = await uow.payments.get(request.ctx.principal.tenant_id, payment_id)
        if payment is not None:
            parse_amount(body.amount, payment.currency)
    cmd = RequestRefund(tenant_id=request.ctx.principal.tenant_id, payment_id=payment_id, amount=body.amount,
                        reason=body.reason, correlation_id=request.ctx.request_id)
    clock = request.app.ctx.container.clock

    async def work(uow: UnitOfWork) -> Refund:
        return await request_refund(cmd, uow=uow, clock=clock)

    return await execute(request, work, lambda r: ok(202 if r.status == "pending" else 201, refund_view(r)),
                         idempotency="required")


@bp.get("/payments/<payment_id:uuid>/refunds")
@secured("read", query=("limit", "cursor"))
async def refunds(request: Request, payment_id: UUID) -> HTTPResponse:
    limit, cursor = list_params(request)
    tenant_id = request.ctx.principal.tenant_id
    return await query(
        request,
        lambda uow: list_refunds(tenant_id, payment_id, uow=uow, limit=limit, cursor=cursor),
        lambda page: page_view(page, refund_view),
    )


@bp.get("/payments/<payment_id:uuid>")
@secured("read")
async def show(request: Request, payment_id: UUID) -> HTTPResponse:
    tenant_id = request.ctx.principal.tenant_id
    return await query(request, lambda uow: get_payment(tenant_id, payment_id, uow=uow), payment_view)


@bp.get("/payments/<payment_id:uuid>/events")
@secured("read")
async def events(request: Request, payment_id: UUID) -> HTTPResponse:
    tenant_id = request.ctx.principal.tenant_id
    return await query(
        request,
        lambda uow: list_payment_events(tenant_id, payment_id, uow=uow),
        lambda history: {"data": [event_view(event) for event in history]},
    )

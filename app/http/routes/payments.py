"""/api/v1/transfers and /api/v1/payments: synchronous transfers and payments."""

from __future__ import annotations

from uuid import UUID

from sanic import Blueprint, HTTPResponse, Request

from app.http.auth import secured
from app.http.io import FieldChecks, execute, ok, parse_uuid, query, read_json, require_idempotency_key
from app.http.schemas import PaymentRequest, TransferRequest, parse_body
from core.accounts import check_metadata
from core.errors import FieldError, ValidationFailed
from core.money import check_currency, parse_amount
from core.payments import Payment
from core.ports import UnitOfWork
from core.usecases.payments import get_payment, list_payment_events
from core.usecases.transfers import MakeTransfer, make_transfer
from core.views import event_view, payment_view

bp = Blueprint("payments", url_prefix="/api/v1")


def transfer_command(request: Request, body: TransferRequest | PaymentRequest) -> MakeTransfer:
    """Validate every field, reporting all problems at once."""
    checks = FieldChecks()
    source = checks.check(parse_uuid, body.source_account_id, "source_account_id")
    destination = checks.check(parse_uuid, body.destination_account_id, "destination_account_id")
    currency = checks.check(check_currency, body.currency)
    amount = checks.check(parse_amount, body.amount, currency) if currency else None
    metadata = checks.check(check_metadata, body.metadata)
    if body.description is not None and len(body.description) > 1000:
        checks.fail("description", "must be at most 1000 characters")
    checks.done()
    assert source and destination and amount and metadata is not None
    return MakeTransfer(
        tenant_id=request.ctx.principal.tenant_id, source_account_id=source, destination_account_id=destination,
        amount=amount, description=body.description, metadata=metadata, correlation_id=request.ctx.request_id,
    )


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
    raise ValidationFailed([FieldError("payment_type", "external payments are not available yet")])


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

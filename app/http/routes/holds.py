"""/api/v1/holds: two-phase transfers (API.md §9): place, capture, void, read and list holds."""

from __future__ import annotations

from uuid import UUID

from sanic import Blueprint, HTTPResponse, Request

from app.http.context import request_id, services, tenant_id
from app.http.endpoints import COMMON, LIST, METADATA, MOVEMENT, links_to, operation, read_page, write
from app.http.io import FieldChecks, list_params, metadata_filter, parse_uuid, query
from app.http.openapi import Operation, Parameter
from app.http.routes.payments import money_fields
from app.http.schemas.holds import CaptureRequest, Hold, HoldRequest, VoidRequest
from core.holds import HoldStatus
from core.usecases.holds import CaptureHold, CreateHold, capture_hold, create_hold, get_hold, list_holds, void_hold
from core.views import hold_view

bp = Blueprint("holds", url_prefix="/api/v1/holds")
_ONE = "/api/v1/holds/{hold_id}"
_STATUSES = tuple(status.value for status in HoldStatus)
_FILTERS = (Parameter(name="account_id", schema={"type": "string", "format": "uuid"},
                      description="Holds with this account on either side"),
            Parameter(name="status", schema={"type": "string", "enum": list(_STATUSES)}))


def create_command(request: Request, body: HoldRequest) -> CreateHold:
    checks = FieldChecks()
    source, amount, metadata = money_fields(checks, body)
    destination = checks.check(parse_uuid, body.destination_account_id, "destination_account_id")
    checks.done()
    assert source and destination and amount and metadata is not None
    return CreateHold(tenant_id=tenant_id(request), source_account_id=source, destination_account_id=destination,
                      amount=amount, expires_in=body.expires_in, description=body.description, metadata=metadata,
                      correlation_id=request_id(request))


@operation(bp, Operation(method="post", path="/api/v1/holds", summary="Place a hold (reserve an amount)",
                         tag="holds", operation_id="createHold",
                         links=links_to("hold_id", "getHold", "captureHold", "voidHold"),
                         problems=MOVEMENT, request=HoldRequest, response=Hold,
                         response_status=201, idempotency="required", errors=(404, 409, *COMMON)))
async def create(request: Request, body: HoldRequest) -> HTTPResponse:
    cmd, clock = create_command(request, body), services(request).clock
    return await write(request, lambda uow: create_hold(cmd, uow=uow, clock=clock), hold_view,
                       lock_accounts=cmd.locked_accounts)


@operation(bp, Operation(method="get", path="/api/v1/holds", summary="List holds", tag="holds",
                         operation_id="listHolds", response=Hold, list_response=True,
                         query=(*_FILTERS, METADATA, *LIST), errors=(422, *COMMON)))
async def index(request: Request) -> HTTPResponse:
    params = list_params(request)
    args = request.get_args(keep_blank_values=True)
    checks = FieldChecks()
    account = checks.check(parse_uuid, args.get("account_id"), "account_id") if "account_id" in args else None
    status = args.get("status")
    if status is not None and status not in _STATUSES:
        checks.fail("status", f"must be one of {', '.join(_STATUSES)}")
    checks.done()
    metadata, now = metadata_filter(request), services(request).clock.now()
    chosen = HoldStatus(status) if status is not None else None
    return await read_page(request, lambda uow: list_holds(
        tenant_id(request), account_id=account, status=chosen, metadata=metadata, now=now, uow=uow, **params),
        lambda hold: hold_view(hold, now))


@operation(bp, Operation(method="get", path=_ONE, summary="Get a hold", tag="holds", operation_id="getHold",
                         problems=("not_found",),
                         response=Hold, errors=(404, *COMMON)))
async def show(request: Request, hold_id: UUID) -> HTTPResponse:
    now = services(request).clock.now()
    return await query(request, lambda uow: get_hold(tenant_id(request), hold_id, uow=uow),
                       lambda hold: hold_view(hold, now))


@operation(bp, Operation(method="post", path=f"{_ONE}/capture",
                         summary="Capture a hold, in full or in part: a completed internal transfer",
                         tag="holds", operation_id="captureHold",
                         problems=("not_found", "invalid_state_transition", "account_frozen", "account_closed"),
                         request=CaptureRequest, body_optional=True,
                         response=Hold, idempotency="required", errors=(404, 409, *COMMON)))
async def capture(request: Request, hold_id: UUID, body: CaptureRequest) -> HTTPResponse:
    cmd = CaptureHold(tenant_id=tenant_id(request), hold_id=hold_id, amount=body.amount,
                      correlation_id=request_id(request))
    clock = services(request).clock
    return await write(request, lambda uow: capture_hold(cmd, uow=uow, clock=clock), hold_view)


@operation(bp, Operation(method="post", path=f"{_ONE}/void", summary="Void a hold: release the whole amount",
                         tag="holds", operation_id="voidHold",
                         problems=("not_found", "invalid_state_transition"), request=VoidRequest, body_optional=True,
                         response=Hold, idempotency="optional",
                         errors=(404, 409, 422, *COMMON)))
async def void(request: Request, hold_id: UUID, body: VoidRequest) -> HTTPResponse:
    tenant, clock, correlation = tenant_id(request), services(request).clock, request_id(request)
    return await write(request, lambda uow: void_hold(tenant, hold_id, uow=uow, clock=clock,
                                                      correlation_id=correlation), hold_view)

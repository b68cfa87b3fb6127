"""/api/v1/accounts: open accounts, read them, their balance and their ledger entries."""

from __future__ import annotations

from uuid import UUID

from sanic import Blueprint, HTTPResponse, Request

from app.http.auth import secured
from app.http.io import FieldChecks, execute, list_params, ok, page_view, query, read_json, storable
from app.http.schemas import CreateAccountRequest, parse_body
from core.accounts import Account, check_metadata
from core.errors import FieldError, ValidationFailed
from core.money import check_currency, parse_amount
from core.ports import UnitOfWork
from core.usecases.accounts import CreateAccount, create_account, get_account, list_accounts, list_transactions
from core.views import account_view, balance_view, entry_view

bp = Blueprint("accounts", url_prefix="/api/v1/accounts")


def create_command(request: Request) -> CreateAccount:
    body: CreateAccountRequest = parse_body(read_json(request), CreateAccountRequest)
    checks = FieldChecks()
    currency = checks.check(check_currency, body.currency)
    initial = None
    if currency and body.initial_balance is not None:
        initial = checks.check(parse_amount, body.initial_balance, currency, field="initial_balance", allow_zero=True)
    metadata = checks.check(check_metadata, body.metadata)
    if not 1 <= len(body.user_id) <= 255:
        checks.fail("user_id", "must be 1 to 255 characters")
    checks.done()
    assert currency and metadata is not None
    return CreateAccount(
        tenant_id=request.ctx.principal.tenant_id, user_id=body.user_id, currency=currency,
        initial_balance=initial, metadata=metadata, correlation_id=request.ctx.request_id,
    )


@bp.post("")
@secured("write")
async def create(request: Request) -> HTTPResponse:
    cmd = create_command(request)
    clock = request.app.ctx.container.clock

    async def work(uow: UnitOfWork) -> Account:
        return await create_account(cmd, uow=uow, clock=clock)

    return await execute(request, work, lambda account: ok(201, account_view(account)), idempotency="optional")


@bp.get("")
@secured("read", query=("user_id", "limit", "cursor"))
async def index(request: Request) -> HTTPResponse:
    limit, cursor = list_params(request)
    user_id = request.get_args(keep_blank_values=True).get("user_id")
    if user_id is not None and not (storable(user_id) and 1 <= len(user_id) <= 255):
        raise ValidationFailed([FieldError("user_id", "must be 1 to 255 characters, without NUL")])
    tenant_id = request.ctx.principal.tenant_id
    return await query(
        request,
        lambda uow: list_accounts(tenant_id, user_id=user_id, limit=limit, cursor=cursor, uow=uow),
        lambda page: page_view(page, account_view),
    )


@bp.get("/<account_id:uuid>")
@secured("read")
async def show(request: Request, account_id: UUID) -> HTTPResponse:
    tenant_id = request.ctx.principal.tenant_id
    return await query(request, lambda uow: get_account(tenant_id, account_id, uow=uow), account_view)


@bp.get("/<account_id:uuid>/balance")
@secured("read")
async def balance(request: Request, account_id: UUID) -> HTTPResponse:
    tenant_id = request.ctx.principal.tenant_id
    return await query(request, lambda uow: get_account(tenant_id, account_id, uow=uow), balance_view)


@bp.get("/<account_id:uuid>/transactions")
@secured("read", query=("limit", "cursor"))
async def transactions(request: Request, account_id: UUID) -> HTTPResponse:
    limit, cursor = list_params(request)
    tenant_id = request.ctx.principal.tenant_id
    return await query(
        request,
        lambda uow: list_transactions(tenant_id, account_id, limit=limit, cursor=cursor, uow=uow),
        lambda page: page_view(page, entry_view),
    )

"""/api/v1/accounts: open accounts, change their controls, read them, their balance and their ledger entries."""

from __future__ import annotations

from uuid import UUID

from sanic import Blueprint, HTTPResponse, Request

from app.http.context import request_id, services, tenant_id
from app.http.endpoints import COMMON, LIST, METADATA, links_to, operation, read_page, write
from app.http.io import FieldChecks, list_params, metadata_filter, parse_time, query, read, storable
from app.http.openapi import Operation, Parameter
from app.http.schemas.accounts import (
    Account,
    Balance,
    CreateAccountRequest,
    LedgerEntry,
    Statement,
    UpdateAccountRequest,
)
from app.http.statements import stream_statement
from core.accounts import AccountStatus, check_metadata
from core.money import check_currency, parse_amount
from core.usecases.accounts import (
    CreateAccount,
    UpdateAccount,
    create_account,
    get_account,
    get_balance,
    list_accounts,
    list_transactions,
    update_account,
)
from core.usecases.statements import balance_at, open_statement
from core.views import account_view, balance_view, entry_view, posted_balance_view

bp = Blueprint("accounts", url_prefix="/api/v1/accounts")
_ONE = "/api/v1/accounts/{account_id}"
_USER_ID = Parameter(name="user_id", schema={"type": "string", "minLength": 1, "maxLength": 255})
_STATUSES = tuple(status.value for status in AccountStatus)
_STATUS = Parameter(name="status", schema={"type": "string", "enum": list(_STATUSES)})


def create_command(request: Request, body: CreateAccountRequest) -> CreateAccount:
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
        tenant_id=tenant_id(request), user_id=body.user_id, currency=currency,
        initial_balance=initial, metadata=metadata, correlation_id=request_id(request),
    )


@operation(bp, Operation(method="post", path="/api/v1/accounts", summary="Open an account", tag="accounts",
                         operation_id="createAccount",
                         links=links_to("account_id", "getAccount", "getBalance", "listTransactions", "updateAccount"),
                         request=CreateAccountRequest, response=Account,
                         response_status=201, idempotency="optional", errors=(409, *COMMON)))
async def create(request: Request, body: CreateAccountRequest) -> HTTPResponse:
    cmd, clock = create_command(request, body), services(request).clock
    return await write(request, lambda uow: create_account(cmd, uow=uow, clock=clock), account_view)


@operation(bp, Operation(method="get", path="/api/v1/accounts", summary="List accounts", tag="accounts",
                         operation_id="listAccounts", response=Account, list_response=True,
                         query=(_USER_ID, _STATUS, METADATA, *LIST), errors=(422, *COMMON)))
async def index(request: Request) -> HTTPResponse:
    params = list_params(request)
    args = request.get_args(keep_blank_values=True)
    user_id, status = args.get("user_id"), args.get("status")
    checks = FieldChecks()
    if user_id is not None and not (storable(user_id) and 1 <= len(user_id) <= 255):
        checks.fail("user_id", "must be 1 to 255 characters, without NUL")
    if status is not None and status not in _STATUSES:
        checks.fail("status", f"must be one of {', '.join(_STATUSES)}")
    checks.done()
    chosen, metadata = AccountStatus(status) if status is not None else None, metadata_filter(request)
    clock = services(request).clock
    return await read_page(request, lambda uow: list_accounts(
        tenant_id(request), user_id=user_id, status=chosen, metadata=metadata, uow=uow, now=clock.now(), **params),
        account_view)


@operation(bp, Operation(method="get", path=_ONE, summary="Get an account", tag="accounts", operation_id="getAccount",
                         problems=("not_found",),
                         response=Account, errors=(404, *COMMON)))
async def show(request: Request, account_id: UUID) -> HTTPResponse:
    clock = services(request).clock
    return await query(request, lambda uow: get_account(tenant_id(request), account_id, uow=uow, now=clock.now()),
                       account_view)


def update_command(request: Request, account_id: UUID, body: UpdateAccountRequest) -> UpdateAccount:
    checks = FieldChecks()  # a null metadata, status or overdraft_limit is refused by `parse_body` (`not_null`)
    metadata = checks.check(check_metadata, body.metadata) if body.metadata is not None else None
    checks.done()
    return UpdateAccount(tenant_id=tenant_id(request), account_id=account_id, metadata=metadata, status=body.status,
                         overdraft_limit=body.overdraft_limit, correlation_id=request_id(request))


@operation(bp, Operation(method="patch", path=_ONE, summary="Change an account's metadata, status or overdraft limit",
                         tag="accounts", operation_id="updateAccount",
                         problems=("not_found", "invalid_state_transition", "account_closed"),
                         request=UpdateAccountRequest, response=Account,
                         idempotency="optional", errors=(404, 409, *COMMON)))
async def change(request: Request, account_id: UUID, body: UpdateAccountRequest) -> HTTPResponse:
    cmd, clock = update_command(request, account_id, body), services(request).clock
    return await write(request, lambda uow: update_account(cmd, uow=uow, clock=clock), account_view,
                       lock_accounts=cmd.locked_accounts)


_TIME = {"type": "string", "format": "date-time"}
_AT = Parameter(name="at", schema=_TIME, description="The posted balance as it was at this instant (from the entries)")
_FROM, _TO = (Parameter(name=name, schema=_TIME, required=True, description=text) for name, text in (
    ("from", "The period's start (included)"), ("to", "The period's end (excluded)")))
_FORMAT = Parameter(name="format", schema={"type": "string", "enum": ["json", "csv"], "default": "json"})


@operation(bp, Operation(method="get", path=f"{_ONE}/balance", summary="Get an account's balance", tag="accounts",
                         operation_id="getBalance",
                         problems=("not_found",), response=Balance, query=(_AT,), errors=(404, 422, *COMMON)))
async def balance(request: Request, account_id: UUID) -> HTTPResponse:
    at = request.get_args(keep_blank_values=True).get("at")
    if at is not None:
        instant = parse_time(at, "at")
        return await query(request, lambda uow: balance_at(tenant_id(request), account_id, instant, uow=uow),
                           posted_balance_view, may_lag=True)  # history may lag; the current balance may not
    clock = services(request).clock
    return await query(request, lambda uow: get_balance(tenant_id(request), account_id, uow=uow, clock=clock),
                       balance_view)


@operation(bp, Operation(method="get", path=f"{_ONE}/statement", summary="Get an account's statement for a period",
                         tag="accounts", operation_id="getStatement",
                         problems=("not_found",), response=Statement, csv=True,
                         query=(_FROM, _TO, _FORMAT), errors=(404, 422, *COMMON)))
async def statement(request: Request, account_id: UUID) -> HTTPResponse:
    args = request.get_args(keep_blank_values=True)
    checks = FieldChecks()
    for name in ("from", "to"):
        if name not in args:
            checks.fail(name, "is required")
    start, end = (checks.check(parse_time, str(args.get(name)), name) if name in args else None
                  for name in ("from", "to"))
    if args.get("format", "json") not in ("json", "csv"):
        checks.fail("format", "must be json or csv")
    checks.done()
    assert start is not None and end is not None
    opened = await read(request, lambda uow: open_statement(tenant_id(request), account_id, start, end, uow=uow),
                        may_lag=True)
    return await stream_statement(request, opened, as_csv=args.get("format") == "csv")


@operation(bp, Operation(method="get", path=f"{_ONE}/transactions", summary="List an account's ledger entries",
                         tag="accounts", operation_id="listTransactions",
                         problems=("not_found",), response=LedgerEntry, list_response=True,
                         query=LIST, errors=(404, 422, *COMMON)))
async def transactions(request: Request, account_id: UUID) -> HTTPResponse:
    params = list_params(request)
    return await read_page(
        request, lambda uow: list_transactions(tenant_id(request), account_id, uow=uow, **params), entry_view)

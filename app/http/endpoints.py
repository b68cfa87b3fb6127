"""One declaration per operation: it registers the route, guards and parses the request, and feeds OpenAPI."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from functools import wraps
from http import HTTPStatus
from typing import Any, TypeVar
from uuid import UUID

from sanic import Blueprint, HTTPResponse, Request
from sanic.exceptions import PayloadTooLarge

from app.http.auth import secured
from app.http.bodies import parse_body
from app.http.declarations import PATH_PARAMETER, Link, Operation, Parameter
from app.http.io import dumps, execute, page_view, query, read_json, require_idempotency_key
from app.http.problems import ApiError
from core.idempotency import StoredResponse
from core.ports import Page, UnitOfWork

T = TypeVar("T")
Handler = Callable[..., Awaitable[HTTPResponse]]

#: The query parameters of every list operation.
LIST = (Parameter(name="limit", schema={"type": "integer", "minimum": 1, "maximum": 100, "default": 20}),
        Parameter(name="cursor", schema={"type": "string", "minLength": 1}))
#: `?metadata[key]=value` (API.md §1) on the lists of accounts and payments; parsed by `io.metadata_filter`.
METADATA = Parameter(name="metadata", deep=True, description="Only rows whose metadata has every given key with "
                     "the given value: `?metadata[tier]=gold&metadata[region]=eu`",
                     schema={"type": "object", "maxProperties": 20, "propertyNames": {"minLength": 1, "maxLength": 40},
                             "additionalProperties": {"type": "string", "maxLength": 500}})
#: Errors any operation may answer: rate limited, or a dependency down.
COMMON = (429, 503)
#: The business problems of moving money between two accounts (a transfer, a payment, a hold).
MOVEMENT = ("not_found", "same_account", "currency_mismatch", "insufficient_funds", "account_frozen",
            "account_closed")


def links_to(parameter: str, *operation_ids: str) -> tuple[Link, ...]:
    """Links from a created resource's `id` to the operations taking it as `parameter` (OpenAPI links: a
    client, and schemathesis' stateful phase, follow them from a creation to what can be done with it)."""
    return tuple(Link(operation_id=operation_id, parameter=parameter) for operation_id in operation_ids)


def operation(bp: Blueprint, op: Operation) -> Callable[[Handler], Handler]:
    """Route `op` on `bp` to the handler and record it for the OpenAPI document.

    Before the handler runs, the caller is authenticated for `op.scope` and rate limited, query
    parameters `op` does not declare are refused, a required Idempotency-Key is insisted on, and
    the body is parsed into `op.request` and passed as `body`; in that order, so a client learns
    of the first problem first.
    """
    uri = _sanic_path(op)
    prefix = bp.url_prefix or ""
    if not uri.startswith(prefix):
        raise ValueError(f"{op.operation_id}: {op.path} is not under {prefix}")

    def decorate(handler: Handler) -> Handler:
        @wraps(handler)
        async def parse(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
            request.ctx.operation = op
            if op.max_body_size is not None:
                await _receive_body(request, op.max_body_size)
            if op.idempotency == "required":
                require_idempotency_key(request)
            if op.request is not None:
                kwargs["body"] = parse_body(read_json(request) if request.body or not op.body_optional else {},
                                            op.request)
            return await handler(request, *args, **kwargs)

        route = secured(op.scope, query=op.query_names)(parse) if op.secured else parse
        # GET's and DELETE's own defaults (GET ignores a body), as `bp.get(...)` would register it
        # A route with a larger body limit streams: Sanic then reads no body before the handler, which
        # reads it under that limit; every other route keeps the server's (REQUEST_MAX_SIZE), enforced
        # before its body is read.
        stream = {"stream": True} if op.max_body_size is not None else {}
        getattr(bp, op.method)(uri[len(prefix):], **stream)(route)
        _declared(bp).append(op)
        return route

    return decorate


async def _receive_body(request: Request, limit: int) -> None:
    """Read the body of a streaming route, refusing more than `limit` bytes (413) as the server refuses more
    than its own limit: on the declared Content-Length before reading any of it, else as it arrives."""
    if request.stream is None:
        return
    request.stream.request_max_size = limit
    try:
        await request.receive_body()  # type: ignore[no-untyped-call]
    except PayloadTooLarge:
        raise ApiError("payload_too_large", f"the request body is larger than {limit} bytes") from None


def declared(bp: Blueprint) -> tuple[Operation, ...]:
    """The operations declared on `bp`, in declaration order."""
    return tuple(_declared(bp))


def _declared(bp: Blueprint) -> list[Operation]:
    if not hasattr(bp.ctx, "operations"):
        bp.ctx.operations = []
    found: list[Operation] = bp.ctx.operations
    return found


def _sanic_path(op: Operation) -> str:
    """The Sanic route of `op.path`: `{payment_id}` becomes `<payment_id:uuid>` for a UUID parameter."""
    kinds = {p.name: ":uuid" if p.schema.get("format") == "uuid" else "" for p in op.path_parameters()}
    return PATH_PARAMETER.sub(lambda match: f"<{match[1]}{kinds[match[1]]}>", op.path)


def _operation(request: Request) -> Operation:
    found: Operation = request.ctx.operation
    return found


async def write(
    request: Request,
    use_case: Callable[[UnitOfWork], Awaitable[T]],
    view: Callable[[T], Any] | None = None,
    *,
    status: Callable[[T], HTTPStatus] | None = None,
    lock_accounts: Collection[UUID] = (),
    grouped: bool = False,
) -> HTTPResponse:
    """Run a write use case under the operation's idempotency mode; answer its view (no body without one).

    The status is the operation's declared `response_status`, or `status(result)`, which must be
    one the operation declares. `lock_accounts`: the accounts the use case locks (its command's
    `locked_accounts`), so that the request waits for its turn on them before it takes a connection.
    `grouped`: it may share a transaction with others arriving together (`io.execute`).
    """
    op = _operation(request)

    def render(result: T) -> StoredResponse:
        code = op.response_status if status is None else int(status(result))
        if code not in op.statuses:
            raise ValueError(f"{op.operation_id} does not declare the status {code}")
        return StoredResponse(status=code, body=b"" if view is None else dumps(view(result)))

    return await execute(request, use_case, render, idempotency=op.idempotency, lock_accounts=lock_accounts,
                         grouped=grouped)


async def read_page(
    request: Request, use_case: Callable[[UnitOfWork], Awaitable[Page[T]]], view: Callable[[T], Any]
) -> HTTPResponse:
    """Run a read-only list use case and answer its page: `data`, `has_more` and `next_cursor` (API.md §1). Lists
    may lag: they read the replica when one is configured and usable (API.md §8)."""
    return await query(request, use_case, lambda page: page_view(page, view), may_lag=True)

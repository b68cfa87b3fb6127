"""Request reading and response writing shared by the route modules."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Collection
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, ParamSpec, TypedDict, TypeVar
from uuid import UUID

from sanic import HTTPResponse, Request

from app.http.context import services, tenant_id
from app.http.problems import PROBLEM_JSON, ApiError, problem_for
from core.errors import CoreError, FieldError, ValidationFailed
from core.idempotency import IdempotentRequest, StoredResponse
from core.ports import Page, Reads, UnitOfWork
from core.usecases.idempotency import run_idempotent

T = TypeVar("T")
P = ParamSpec("P")
_KEY = re.compile(r"^[\x20-\x7e]{1,255}$")


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose keys are all different (API.md §1: a repeated key is `malformed_json`, not last-wins)."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise ValueError(f"the key {key!r} appears more than once in one object")
        found[key] = value
    return found


def read_json(request: Request) -> Any:
    """The body parsed as JSON, numbers as exact Decimals; `malformed_json` if it is not JSON.

    Strings PostgreSQL cannot store (NUL characters, lone surrogates) are a `validation_error`.
    """
    try:
        body = json.loads(request.body or b"", parse_float=Decimal, parse_constant=_reject_constant,
                          object_pairs_hook=_unique_keys)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise ApiError("malformed_json", f"the request body is not valid JSON: {error}") from None
    if errors := unstorable_strings(body):
        raise ValidationFailed(errors)
    request.ctx.json = body  # reused for the idempotency fingerprint
    return body


def storable(text: str) -> bool:
    """False for text PostgreSQL rejects: a NUL character, or a lone surrogate (not encodable as UTF-8)."""
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def unstorable_strings(value: Any) -> list[FieldError]:
    """One error per field of a parsed JSON document holding text that cannot be stored (iterative: no depth limit)."""
    errors: list[FieldError] = []
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str) and not storable(item):
            errors.append(FieldError(path or "body", "must not contain NUL characters or unpaired surrogates"))
        elif isinstance(item, dict):
            for key, child in item.items():
                if not storable(key):
                    errors.append(FieldError(path or "body", "keys must not contain NUL or unpaired surrogates"))
                else:
                    stack.append((f"{path}.{key}" if path else key, child))
        elif isinstance(item, list):
            stack.extend((f"{path}[{index}]", child) for index, child in enumerate(item))
    return errors


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def ok(status: int, view: Any) -> StoredResponse:
    return StoredResponse(status=status, body=dumps(view))


def send(response: StoredResponse) -> HTTPResponse:
    """An HTTP response from a (possibly replayed) stored response."""
    content_type = PROBLEM_JSON if response.status >= 400 else "application/json"
    headers = {"Idempotent-Replayed": "true"} if response.replayed else None
    return HTTPResponse(response.body, status=response.status, headers=headers, content_type=content_type)


def page_view(page: Page[T], view: Callable[[T], Any]) -> dict[str, Any]:
    return {"data": [view(item) for item in page.items], "has_more": page.next_cursor is not None,
            "next_cursor": page.next_cursor}


def require_idempotency_key(request: Request) -> None:
    """`idempotency_key_missing` before anything else is looked at, so the client learns it first."""
    if "idempotency-key" not in request.headers:
        raise ApiError("idempotency_key_missing", "this operation requires an Idempotency-Key header")


def idempotent_request(request: Request, *, required: bool) -> IdempotentRequest | None:
    """The Idempotency-Key of the request with the fingerprint of method, path and body."""
    if required:
        require_idempotency_key(request)
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not _KEY.match(key):
        raise ValidationFailed([FieldError("Idempotency-Key", "must be 1 to 255 printable ASCII characters")])
    try:  # equal JSON documents are the same request, whatever their spacing or key order
        parsed = request.ctx.json if hasattr(request.ctx, "json") else json.loads(request.body or b"null",
                                                                                     parse_float=Decimal)
        canonical = json.dumps(parsed, sort_keys=True, default=str)
    except ValueError:
        canonical = (request.body or b"").decode("latin-1")
    digest = hashlib.sha256(f"{request.method} {request.path}\n{canonical}".encode()).digest()
    return IdempotentRequest(tenant_id=tenant_id(request), key=key, fingerprint=digest)


async def execute(
    request: Request,
    work: Callable[[UnitOfWork], Awaitable[T]],
    render: Callable[[T], StoredResponse],
    *,
    idempotency: str,
    lock_accounts: Collection[UUID] = (),
    grouped: bool = False,
) -> HTTPResponse:
    """Run a write use case in one unit of work, under the request's idempotency key; `lock_accounts`
    are the accounts it locks, declared so that it waits for its turn on them before taking a connection.
    `grouped`: the use case may share its transaction with others arriving together (the process's
    `PostingEngine`); it must change nothing when it refuses (a transfer)."""
    found = services(request)
    idempotent = idempotent_request(request, required=idempotency == "required")

    def render_error(error: CoreError) -> StoredResponse:
        return problem_for(error, request.ctx.request_id)

    # Shielded: a client that disconnects mid-request cancels the handler, but the unit of
    # work still finishes (commit or rollback) instead of being torn down halfway; a retry
    # with the same key then replays its outcome.
    if grouped and idempotent is not None:
        response = await asyncio.shield(found.posting.run(
            work, request=idempotent, render=render, render_error=render_error, lock_accounts=lock_accounts))
        return send(response)
    response = await asyncio.shield(run_idempotent(
        work,
        request=idempotent,
        render=render,
        render_error=render_error,
        uow_factory=found.uow_factory,
        clock=found.clock,
        ttl=timedelta(seconds=found.settings.idempotency.ttl),
        lock_accounts=lock_accounts,
    ))
    return send(response)


async def read(request: Request, use_case: Callable[[UnitOfWork], Awaitable[T]], *, may_lag: bool = False) -> T:
    """Run a read-only use case (no transaction) and return what it found: on the primary, or with `may_lag` (lists,
    statements, the events feed, balance history) through the request's `Reads` (the read replica when usable)."""
    if may_lag:
        return await reads(request).run(use_case)
    async with services(request).uow_factory(read_only=True) as uow:
        return await use_case(uow)


def reads(request: Request) -> Reads:
    """The request's `Reads`, made on first use and kept, so that its later reads never go back to the replica."""
    if not hasattr(request.ctx, "reads"):
        request.ctx.reads = services(request).reads()
    found: Reads = request.ctx.reads
    return found


async def query(
    request: Request, use_case: Callable[[UnitOfWork], Awaitable[T]], view: Callable[[T], Any], *,
    may_lag: bool = False,
) -> HTTPResponse:
    """Run a read-only use case and answer 200 with its view (`may_lag`: as `read`)."""
    return send(ok(200, view(await read(request, use_case, may_lag=may_lag))))


class FieldChecks:
    """Runs field parsers and collects their errors, so a request reports all its problems at once.

    `check(parse, ...)` returns the parsed value, or None after recording the
    failure; `done()` raises `ValidationFailed` with everything recorded.
    """

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def check(self, parse: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | None:
        try:
            return parse(*args, **kwargs)
        except ValidationFailed as error:
            self.errors.extend(error.errors)
            return None

    def fail(self, field: str, message: str) -> None:
        self.errors.append(FieldError(field, message))

    def done(self) -> None:
        if self.errors:
            raise ValidationFailed(self.errors)


_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def parse_uuid(value: Any, field: str) -> UUID:
    """A UUID in its canonical hyphenated form (not `{...}`, `urn:uuid:` or bare hex)."""
    if isinstance(value, str) and _UUID.match(value):
        return UUID(value)
    raise ValidationFailed([FieldError(field, "must be a UUID")])


class ListParams(TypedDict):
    """What every list use case takes besides its filters, as keyword arguments."""

    limit: int
    cursor: str | None


def list_params(request: Request) -> ListParams:
    """`limit` (1-100, default 20) and the opaque `cursor` of a list request."""
    args = request.get_args(keep_blank_values=True)  # "?limit=" is an error, not the default
    raw = args.get("limit")
    limit = 20
    if raw is not None:
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 100:  # "²".isdigit() but int("²") fails
            raise ValidationFailed([FieldError("limit", "must be an integer from 1 to 100")])
        limit = int(raw)
    cursor = args.get("cursor")
    if cursor is not None and not cursor:
        raise ValidationFailed([FieldError("cursor", "must not be empty")])
    return ListParams(limit=limit, cursor=cursor)


def metadata_filter(request: Request) -> dict[str, str]:
    """`?metadata[key]=value`, repeatable with other keys (API.md §1): every pair must be in a row's metadata.
    Keys and values follow the metadata rules (keys 1-40 characters, values at most 500); a key given twice is
    refused rather than read as "both values", which no row can hold."""
    args = request.get_args(keep_blank_values=True)
    wanted: dict[str, str] = {}
    checks = FieldChecks()
    for name in args:
        if not name.startswith("metadata[") or not name.endswith("]"):
            continue
        key, values = name[len("metadata["):-1], args.getlist(name)
        if not 1 <= len(key) <= 40 or not storable(key):
            checks.fail(name, "keys must be 1 to 40 characters, without NUL")
        elif len(values) > 1:
            checks.fail(name, "must be given once (every key given must match)")
        elif len(values[0]) > 500 or not storable(values[0]):
            checks.fail(name, "must be at most 500 characters, without NUL")
        else:
            wanted[key] = values[0]
    checks.done()
    return wanted


_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})$")


def parse_time(value: str, field: str) -> datetime:
    """An RFC 3339 timestamp with a zone (`2026-01-31T12:00:00Z`), as UTC."""
    try:
        if _TIME.match(value):
            parsed = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00")).astimezone(UTC)
            if 1 <= parsed.year <= 9999:
                return parsed
    except (ValueError, OverflowError):  # year 1 at +01:00 is before datetime.min in UTC
        pass
    raise ValidationFailed([FieldError(field, "must be an RFC 3339 time with a zone, e.g. 2026-01-31T12:00:00Z")])

"""Problem details (RFC 9457, API.md §1) raised as typed exceptions: one class per status, some per problem type."""

from __future__ import annotations

import json
from typing import Any

import attrs


@attrs.frozen(kw_only=True)
class FieldProblem:
    """One entry of a problem's `errors`: a bad `field` (validation_error) or a failing batch leg (batch_failed,
    with `index`, `type` and `detail`); every member the server sent is kept in `raw`."""

    field: str | None
    message: str | None
    index: int | None
    type: str | None
    detail: str | None
    raw: dict[str, Any]


class ApiError(Exception):
    """A problem+json answer: `type` (`/problems/<slug>`), `title`, `status`, `detail`, `request_id`, `errors`.

    `code` is the slug of `type` (`insufficient_funds`); `retry_after` the `Retry-After` seconds, if any. An
    answer that is not problem+json (a proxy's 502 page) is raised as the class of its status, `type`
    `about:blank`.
    """

    def __init__(self, *, type: str, title: str, status: int, detail: str = "", request_id: str | None = None,
                 errors: tuple[FieldProblem, ...] = (), retry_after: float | None = None) -> None:
        super().__init__(f"{status} {title}: {detail}" if detail else f"{status} {title}")
        self.type, self.title, self.status, self.detail = type, title, status, detail
        self.request_id, self.errors, self.retry_after = request_id, errors, retry_after

    @property
    def code(self) -> str:
        """The problem's slug: the last segment of `type`."""
        return self.type.rsplit("/", 1)[-1]


class BadRequest(ApiError):
    """400: malformed JSON, or a required Idempotency-Key missing."""


class AuthenticationError(ApiError):
    """401: the API key is missing, unknown or revoked."""


class PermissionDenied(ApiError):
    """403: the API key lacks the scope (`read` or `write`) the operation needs."""


class NotFound(ApiError):
    """404: no such resource in the key's tenant."""


class Conflict(ApiError):
    """409: the resource's state forbids the operation (or its Idempotency-Key is still being answered)."""


class PayloadTooLarge(ApiError):
    """413: the body is over the route's limit."""


class UnprocessableEntity(ApiError):
    """422: the request is well formed but breaks a rule."""


class RateLimited(ApiError):
    """429: too many requests for this key; retried by the client, raised when its attempts run out."""


class ServerError(ApiError):
    """5xx: the server failed, or (503) a dependency is down; a 503 is retried, then raised."""


class ServiceUnavailable(ServerError):
    """503: a dependency is down or restarting; the request did nothing and may be repeated."""


class ValidationError(UnprocessableEntity):
    """validation_error: `errors` names each bad field."""


class InsufficientFunds(UnprocessableEntity):
    """insufficient_funds: the source's available balance plus overdraft does not cover the amount."""


class IdempotencyKeyReused(UnprocessableEntity):
    """idempotency_key_reused: the key was used for a different request."""


class BatchFailed(UnprocessableEntity):
    """batch_failed: an atomic batch did nothing; `errors` lists each failing transfer's `index`."""


class InvalidStateTransition(Conflict):
    """invalid_state_transition: e.g. cancelling a completed payment; never retried."""


class IdempotencyRequestInProgress(Conflict):
    """idempotency_request_in_progress: the first request with this key is still running; retried by the client."""


class AccountFrozen(Conflict):
    """account_frozen: a frozen account takes part in no new movement."""


class AccountClosed(Conflict):
    """account_closed: a closed account is final."""


_BY_STATUS: dict[int, type[ApiError]] = {400: BadRequest, 401: AuthenticationError, 403: PermissionDenied,
                                         404: NotFound, 409: Conflict, 413: PayloadTooLarge,
                                         422: UnprocessableEntity, 429: RateLimited, 503: ServiceUnavailable}
_BY_CODE: dict[str, type[ApiError]] = {
    "validation_error": ValidationError, "insufficient_funds": InsufficientFunds,
    "idempotency_key_reused": IdempotencyKeyReused, "batch_failed": BatchFailed,
    "invalid_state_transition": InvalidStateTransition,
    "idempotency_request_in_progress": IdempotencyRequestInProgress,
    "account_frozen": AccountFrozen, "account_closed": AccountClosed,
}


def error_class(code: str, status: int) -> type[ApiError]:
    """The exception class of a problem: its type's own class if it has one, else its status's."""
    if code in _BY_CODE and _BY_CODE[code].__mro__[1] is _BY_STATUS.get(status):
        return _BY_CODE[code]
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ServerError if status >= 500 else ApiError


def problem(status: int, reason: str, body: bytes, retry_after: float | None) -> ApiError:
    """The exception for an error answer: its problem details, or its status and reason for any other body."""
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("type"), str):
        return error_class("", status)(type="about:blank", title=reason or "HTTP error", status=status,
                                       detail=body[:500].decode("utf-8", "replace"), retry_after=retry_after)
    kind: str = parsed["type"]
    errors = tuple(_field_problem(entry) for entry in parsed.get("errors") or () if isinstance(entry, dict))
    return error_class(kind.rsplit("/", 1)[-1], status)(
        type=kind, title=str(parsed.get("title", reason)), status=status, detail=str(parsed.get("detail", "")),
        request_id=parsed.get("request_id"), errors=errors, retry_after=retry_after)


def _field_problem(entry: dict[str, Any]) -> FieldProblem:
    index = entry.get("index")
    return FieldProblem(field=entry.get("field"), message=entry.get("message"),
                        index=index if isinstance(index, int) else None, type=entry.get("type"),
                        detail=entry.get("detail"), raw=entry)

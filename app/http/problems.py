"""RFC 9457 problem details: the one mapping from error codes to HTTP statuses."""

from __future__ import annotations

import json
from typing import Any

from core.errors import BatchFailed, CoreError, ValidationFailed
from core.idempotency import StoredResponse

STATUS: dict[str, int] = {
    "malformed_json": 400,
    "validation_error": 422,
    "idempotency_key_missing": 400,
    "idempotency_key_reused": 422,
    "idempotency_request_in_progress": 409,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "insufficient_funds": 422,
    "currency_mismatch": 422,
    "same_account": 422,
    "invalid_state_transition": 409,
    "refund_exceeds_payment": 422,
    "account_frozen": 409,
    "account_closed": 409,
    "batch_failed": 422,
    "payload_too_large": 413,
    "request_header_fields_too_large": 431,
    "rate_limited": 429,
    "internal_error": 500,
    "service_unavailable": 503,
}

TITLES: dict[str, str] = {
    "malformed_json": "Malformed JSON",
    "validation_error": "Validation error",
    "idempotency_key_missing": "Idempotency-Key missing",
    "idempotency_key_reused": "Idempotency-Key reused",
    "idempotency_request_in_progress": "Request in progress",
    "unauthorized": "Unauthorized",
    "forbidden": "Forbidden",
    "not_found": "Not found",
    "method_not_allowed": "Method not allowed",
    "insufficient_funds": "Insufficient funds",
    "currency_mismatch": "Currency mismatch",
    "same_account": "Same account",
    "invalid_state_transition": "Invalid state transition",
    "refund_exceeds_payment": "Refund exceeds payment",
    "account_frozen": "Account frozen",
    "account_closed": "Account closed",
    "batch_failed": "Batch failed",
    "payload_too_large": "Payload too large",
    "request_header_fields_too_large": "Request headers too large",
    "rate_limited": "Too many requests",
    "internal_error": "Internal server error",
    "service_unavailable": "Service unavailable",
}

PROBLEM_JSON = "application/problem+json"


class ApiError(CoreError):
    """An HTTP-level failure that has no place in core (bad JSON, missing header, rate limit)."""

    def __init__(self, code: str, detail: str, *, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.retry_after = retry_after


def problem(
    code: str,
    detail: str,
    request_id: str | None,
    errors: list[dict[str, Any]] | None = None,
    *,
    status: int | None = None,
) -> StoredResponse:
    """A problem+json body for `code`; the status comes from the table above unless given."""
    status = status or STATUS.get(code, 500)
    body: dict[str, Any] = {
        "type": f"/problems/{code}",
        "title": TITLES.get(code) or code.replace("_", " ").capitalize(),
        "status": status,
        "detail": detail,
        "request_id": request_id,
    }
    if errors:
        body["errors"] = errors
    return StoredResponse(status=status, body=json.dumps(body, separators=(",", ":")).encode())


def problem_for(error: CoreError, request_id: str | None) -> StoredResponse:
    """The problem response for a core or API error."""
    errors: list[dict[str, Any]] | None = None
    if isinstance(error, ValidationFailed):
        errors = [{"field": e.field, "message": e.message} for e in error.errors]
    elif isinstance(error, BatchFailed):
        errors = [leg_problem(f.index, f.error) for f in error.failures]
    return problem(error.code, error.detail, request_id, errors)


def leg_problem(index: int, error: CoreError) -> dict[str, Any]:
    """One failing transfer of an atomic batch (API.md §10): its index and the problem it alone would answer."""
    return {"index": index, **problem_body(error)}


def problem_body(error: CoreError) -> dict[str, Any]:
    """The problem a transfer of a batch alone would have answered (a batch's request id is the batch's)."""
    code = error.code
    return {"type": f"/problems/{code}", "title": TITLES.get(code) or code.replace("_", " ").capitalize(),
            "status": STATUS.get(code, 500), "detail": error.detail}

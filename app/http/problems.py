"""RFC 9457 problem details: the one mapping from error codes to HTTP statuses."""

from __future__ import annotations

import json
from typing import Any

from app.http.problem_types import PROBLEM_TYPES
from core.errors import BatchFailed, CoreError, ValidationFailed
from core.idempotency import StoredResponse

#: Each slug's status and title, read off the one table of problem types (each has its page there).
STATUS: dict[str, int] = {slug: kind.status for slug, kind in PROBLEM_TYPES.items()}
TITLES: dict[str, str] = {slug: kind.title for slug, kind in PROBLEM_TYPES.items()}

#: The slug of each 4xx the framework raises on its own (a request timeout, an unknown `Expect`, a URL too long):
#: named here rather than after the status phrase, which Python renames (3.13 took RFC 9110's names for 413, 414,
#: 416 and 422), so that every type the server answers keeps its page.
FRAMEWORK_SLUGS: dict[int, str] = {
    400: "malformed_json", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    408: "request_timeout", 413: "payload_too_large", 414: "request_uri_too_long",
    416: "requested_range_not_satisfiable", 417: "expectation_failed",
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

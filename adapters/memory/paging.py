"""Newest-first keyset pages over in-memory rows, with cursors checked as strictly as PostgreSQL's."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

from core.errors import FieldError, ValidationFailed

_T = TypeVar("_T")
_BIGINT = range(-(2**63), 2**63)


def _malformed() -> ValidationFailed:
    return ValidationFailed([FieldError("cursor", "is not a cursor this API returned")])


def account_key(values: list[Any]) -> tuple[datetime, UUID]:
    """The (created_at, id) inside an accounts cursor; a time PostgreSQL could not hold is malformed too."""
    created, last_id = values
    try:
        at = datetime.fromisoformat(created)
        at = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)  # asyncpg reads naive times as UTC
        return at, UUID(last_id)
    except (TypeError, ValueError, AttributeError, OverflowError):
        raise _malformed() from None


def entry_key(values: list[Any]) -> tuple[int]:
    """The seq inside a ledger cursor: an integer a BIGINT column can compare with."""
    (seq,) = values
    if not isinstance(seq, int) or isinstance(seq, bool) or seq not in _BIGINT:
        raise _malformed()
    return (seq,)


def page(
    rows: list[_T], limit: int, after: tuple[Any, ...] | None, *, key: Callable[[_T], Any]
) -> tuple[list[_T], bool]:
    """Up to `limit` rows newest first by `key`, strictly after `after`, and whether more follow."""
    rows = sorted(rows, key=key, reverse=True)
    if after is not None:
        rows = [r for r in rows if key(r) < after]
    return rows[:limit], len(rows) > limit

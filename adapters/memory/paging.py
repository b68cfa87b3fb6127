"""Newest-first keyset pages over in-memory rows, with cursors checked as strictly as PostgreSQL's."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

from adapters.cursor import Stamped, time_id_cursor, time_id_key
from core.errors import FieldError, ValidationFailed
from core.ports import Page

_T = TypeVar("_T")
_S = TypeVar("_S", bound=Stamped)
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


def time_id_page(rows: list[_S], limit: int, cursor: str | None) -> Page[_S]:
    """A page of `rows` newest first by (created_at, id), after the cursor's position."""
    after = time_id_key(cursor) if cursor is not None else None
    items, more = page(rows, limit, after, key=lambda r: (r.created_at, r.id))
    return Page(items, time_id_cursor(items[-1].created_at, items[-1].id) if more else None)


def holds(metadata: Mapping[str, str], wanted: Mapping[str, str] | None) -> bool:
    """Whether `metadata` has every (key, value) of `wanted` (API.md §1 `?metadata[key]=value`; None: any)."""
    return not wanted or all(metadata.get(key) == value for key, value in wanted.items())

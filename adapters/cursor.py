"""Opaque keyset cursors, shared by the memory and PostgreSQL adapters."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

from core.errors import FieldError, ValidationFailed


class Stamped(Protocol):
    """A row listed newest first by (created_at, id), the key of a `time_id_cursor`."""

    @property
    def created_at(self) -> datetime: ...

    @property
    def id(self) -> UUID: ...


def encode_cursor(*values: Any) -> str:
    """An opaque, URL-safe cursor holding the sort key of the last row of a page."""
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    """The sort key inside a cursor; `ValidationFailed` for anything not made by `encode_cursor`."""
    try:
        if len(cursor) > 512:  # ours are < 100 characters
            raise ValueError("too long")
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeError, RecursionError):
        values = None
    if not isinstance(values, list) or len(values) != arity:
        raise ValidationFailed([FieldError("cursor", "is not a cursor this API returned")])
    return values


def time_id_key(cursor: str) -> tuple[datetime, UUID]:
    """The (created_at, id) inside a newest-first cursor; a time PostgreSQL could not hold is malformed too."""
    created, last_id = decode_cursor(cursor, 2)
    try:
        at = datetime.fromisoformat(created)
        at = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)  # asyncpg reads naive times as UTC
        if not 1 <= at.year <= 9999:
            raise ValueError("out of range")
        return at, UUID(last_id)
    except (TypeError, ValueError, AttributeError, OverflowError):
        raise ValidationFailed([FieldError("cursor", "is not a cursor this API returned")]) from None


def time_id_cursor(created_at: datetime, row_id: UUID) -> str:
    return encode_cursor(created_at.isoformat(), str(row_id))

"""Newest-first keyset pages over rows ordered by (created_at, id), as most listings are."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import asyncpg

from adapters.cursor import Stamped, time_id_cursor, time_id_key
from adapters.postgres.session import PgSession
from core.ports import Page

T = TypeVar("T", bound=Stamped)


async def time_id_page(
    session: PgSession, sql: str, to_item: Callable[[asyncpg.Record], T], *args: Any, limit: int, cursor: str | None,
    tail: tuple[Any, ...] = (),
) -> Page[T]:
    """Run `sql` with `args`, then the cursor's (created_at, id) or two NULLs, then `limit + 1`, then `tail`; the
    extra row only tells whether another page follows."""
    after: list[Any] = [None, None] if cursor is None else list(time_id_key(cursor))
    rows = await session.fetch(sql, *args, *after, limit + 1, *tail)
    items = [to_item(row) for row in rows[:limit]]
    return Page(items, time_id_cursor(items[-1].created_at, items[-1].id) if len(rows) > limit else None)

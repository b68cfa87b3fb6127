"""Multi-row VALUES statements with scalar parameters, for the composed write of a unit of work.

Scalars encode cheaper in asyncpg than one array per column (`unnest`), and the
handful of rows a unit of work writes makes the statement text vary little; each
text is built once per shape.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

Fragment = tuple[str, list[Any]]


@functools.lru_cache(maxsize=128)
def _insert_sql(table: str, columns: str, width: int, count: int) -> str:
    rows = ", ".join("(" + ", ".join(f"${r * width + c + 1}" for c in range(width)) + ")" for r in range(count))
    return f"INSERT INTO {table} ({columns}) VALUES {rows}"


def insert_rows(table: str, columns: str, rows: Sequence[Sequence[Any]]) -> Fragment:
    """`INSERT INTO table (columns) VALUES (...), (...)`; types come from the target columns."""
    width = len(rows[0])
    return _insert_sql(table, columns, width, len(rows)), [value for row in rows for value in row]


@functools.lru_cache(maxsize=32)
def _update_sql(table: str, typed: tuple[tuple[str, str], ...], count: int) -> str:
    width = len(typed)
    first = "(" + ", ".join(f"${c + 1}::{kind}" for c, (_, kind) in enumerate(typed)) + ")"
    rest = ["(" + ", ".join(f"${r * width + c + 1}" for c in range(width)) + ")" for r in range(1, count)]
    names = [name for name, _ in typed]
    assignments = ", ".join(f"{name} = v.{name}" for name in names[1:])
    return (f"UPDATE {table} t SET {assignments} FROM (VALUES {', '.join([first, *rest])}) "
            f"AS v({', '.join(names)}) WHERE t.{names[0]} = v.{names[0]}")


def update_rows(table: str, typed: tuple[tuple[str, str], ...], rows: Sequence[Sequence[Any]]) -> Fragment:
    """Set columns by key (the first of `typed`, as (name, SQL type) pairs) for each row."""
    return _update_sql(table, typed, len(rows)), [value for row in rows for value in row]

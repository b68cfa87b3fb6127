"""Rows and entities: records read into entities, and the statements composed into the one write of a unit
of work.

Columns are named as the fields of the entity they hold. A table whose columns' SQL types are given inserts
its rows as one array per column (`unnest`), whatever their number, and updates them as `VALUES` padded to a
power of two below `UNNEST_FROM` rows (`update_rows`), as arrays from there: the text of the write hardly
depends on how many rows a group commits, so the composed statements of a busy process are a handful of shapes,
each prepared once. (With one multi-row `VALUES` per row count and one `UPDATE` per payment, the product of the
counts of each table made dozens of shapes per connection: a prepare for each new one, and megabytes of cached
plans in every backend.)
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Callable, Collection, Iterator, Sequence
from contextvars import ContextVar
from typing import Any, TypeVar

import asyncpg

from adapters.pending import Pending

#: asyncpg refuses a statement with more parameters than this: larger writes (a batch of a thousand
#: transfers) are split into several rows-statements and composed statements.
MAX_PARAMETERS = 32767

Fragment = tuple[str, list[Any]]
Typed = tuple[tuple[str, str], ...]
Value = Callable[[Any, str], Any]
E = TypeVar("E")


@functools.cache
def fields(columns: str) -> tuple[str, ...]:
    """The names in a column list ("id, tenant_id, ..."): the fields of the entity the row holds."""
    return tuple(columns.replace(" ", "").split(","))


def reader(entity: Callable[..., E], columns: str) -> Callable[[asyncpg.Record], E]:
    """The row mapper of `entity` for rows selected as `columns`."""
    names = fields(columns)

    def read(row: asyncpg.Record) -> E:
        return entity(**{name: row[name] for name in names})

    return read


@functools.lru_cache(maxsize=128)
def _insert_sql(table: str, columns: str, width: int, count: int) -> str:
    rows = ", ".join("(" + ", ".join(f"${r * width + c + 1}" for c in range(width)) + ")" for r in range(count))
    return f"INSERT INTO {table} ({columns}) VALUES {rows}"


def insert_rows(table: str, columns: str, rows: Sequence[Sequence[Any]]) -> Fragment:
    """`INSERT INTO table (columns) VALUES (...), (...)`; types come from the target columns."""
    width = len(rows[0])
    return _insert_sql(table, columns, width, len(rows)), [value for row in rows for value in row]


@functools.lru_cache(maxsize=64)
def _update_sql(table: str, typed: Typed, count: int) -> str:
    width = len(typed)
    first = "(" + ", ".join(f"${c + 1}::{kind}" for c, (_, kind) in enumerate(typed)) + ")"
    rest = ["(" + ", ".join(f"${r * width + c + 1}" for c in range(width)) + ")" for r in range(1, count)]
    names = [name for name, _ in typed]
    assignments = ", ".join(f"{name} = v.{name}" for name in names[1:])
    return (f"UPDATE {table} t SET {assignments} FROM (VALUES {', '.join([first, *rest])}) "
            f"AS v({', '.join(names)}) WHERE t.{names[0]} = v.{names[0]}")


#: From this many rows on, an update sends one array per column, one text whatever their number (a transfer
#: group's accounts, a batch's): cheaper for PostgreSQL than as many `VALUES` rows (measured on transfers).
UNNEST_FROM = 9


def padded(count: int) -> int:
    """`count` (at least 1) rounded up to a power of two: how many rows or statements a padded write sends."""
    return 1 << (count - 1).bit_length()


def update_rows(table: str, typed: Typed, rows: Sequence[Sequence[Any]]) -> Fragment:
    """Set columns by key (the first of `typed`, as (name, SQL type) pairs) for each row, as multi-row `VALUES`.

    The row count is padded up to a power of two with rows of NULLs, which match nothing: a handful of texts per
    table. `VALUES` tells the planner how many rows there are; with `unnest` it guesses 10.
    """
    width, count = len(typed), padded(len(rows))
    values = [value for row in rows for value in row] + [None] * (width * (count - len(rows)))
    return _update_sql(table, typed, count), values


@functools.lru_cache(maxsize=64)
def _insert_arrays_sql(table: str, columns: str, types: tuple[str, ...], constant: tuple[bool, ...]) -> str:
    """Each column a scalar parameter (`constant`) or an array unnested (the others), in the columns' order."""
    values, arrays = [], []
    for index, (kind, fixed) in enumerate(zip(types, constant, strict=True)):
        if fixed:
            values.append(f"${index + 1}::{kind}")
        else:
            arrays.append(f"${index + 1}::{kind}[]")
            values.append(f"u.c{index}")
    names = ", ".join(f"c{index}" for index, fixed in enumerate(constant) if not fixed)
    return f"INSERT INTO {table} ({columns}) SELECT {', '.join(values)} FROM unnest({', '.join(arrays)}) AS u({names})"


def _same(column: Sequence[Any], kind: str) -> bool:
    """Whether every value of `column` is its first (by type and equality): then it is sent once. Never for
    `json`, which keeps its text as given (equal dicts may differ in key order); `jsonb` does not."""
    first, first_type = column[0], type(column[0])
    return kind != "json" and all(v is first or (type(v) is first_type and v == first) for v in column)


_FOLD: ContextVar[bool] = ContextVar("fold", default=False)


@contextlib.contextmanager
def folding(on: bool) -> Iterator[None]:
    """Within it, `insert_arrays` sends a column every row shares once (`on`: the unit of work composing a
    batch's write, hundreds of rows sharing their tenant, instant and currency). Outside, never: a group commit's
    write then keeps one text whatever values its requests carry."""
    token = _FOLD.set(on)
    try:
        yield
    finally:
        _FOLD.reset(token)


def _nested(types: Sequence[str], rows: Sequence[Sequence[Any]]) -> bool:
    """Whether a column holds arrays (SQL `text[]`, or a JSON array in a `json`/`jsonb` column, which asyncpg would
    encode as a dimension of the array): `unnest` would flatten them, so those rows go as `VALUES`."""
    return any(kind.endswith("]") or (kind in ("json", "jsonb") and any(isinstance(row[c], list | tuple)
                                                                          for row in rows))
               for c, kind in enumerate(types))


def insert_arrays(table: str, columns: str, types: tuple[str, ...], rows: Sequence[Sequence[Any]]) -> Fragment:
    """`INSERT INTO table (columns) SELECT ... FROM unnest(...)`: one array per column, of the SQL `types`, but for
    a column whose value every row shares (a batch's tenant, instant, currency, correlation id, trace context,
    empty metadata): that value goes once, as a scalar, in a batch's write (`folding`). Fewer values to encode
    (asyncpg checks and encodes each element of an array one by one; a `jsonb` one is `json.dumps`ed each time)
    and fewer arrays to unnest. Rows with a column of arrays (`_nested`) go as `VALUES`."""
    if _nested(types, rows):
        return insert_rows(table, columns, rows)
    cols = list(zip(*rows, strict=True))
    fold = _FOLD.get()
    constant = tuple(fold and _same(column, kind) for column, kind in zip(cols, types, strict=True))
    if all(constant):  # unnest needs an array: keep the first column's
        constant = (False, *constant[1:])
    args = [column[0] if fixed else list(column) for column, fixed in zip(cols, constant, strict=True)]
    return _insert_arrays_sql(table, columns, types, constant), args


def insert_entities(table: str, columns: str, entities: Collection[Any], value: Value = getattr,
                    types: tuple[str, ...] | None = None) -> list[Fragment]:
    """The insert of `entities` (none: no statement), each column's value read by `value(entity, name)`.

    Given the columns' SQL `types`, the rows go as one array per column: one short statement, prepared once,
    whether a group writes one row or a batch thousands (as `VALUES`, those would be thousands of parameters,
    too long for asyncpg's statement cache, so parsed and planned again every time). Without them (tables
    written one row at a time, off the hot paths), as multi-row `VALUES`.
    """
    names = fields(columns)
    rows = [[value(e, name) for name in names] for e in entities]
    if not rows:
        return []
    if types is not None:
        return [insert_arrays(table, columns, types, rows)]
    step = MAX_PARAMETERS // len(names)
    return [insert_rows(table, columns, rows[start:start + step]) for start in range(0, len(rows), step)]


@functools.lru_cache(maxsize=32)
def _update_arrays_sql(table: str, typed: Typed) -> str:
    names = [name for name, _ in typed]
    arrays = ", ".join(f"${c + 1}::{kind}[]" for c, (_, kind) in enumerate(typed))
    assignments = ", ".join(f"{name} = v.{name}" for name in names[1:])
    return (f"UPDATE {table} t SET {assignments} FROM unnest({arrays}) AS v({', '.join(names)}) "
            f"WHERE t.{names[0]} = v.{names[0]}")


def update_entities(table: str, typed: Typed, entities: Collection[Any], value: Value = getattr) -> list[Fragment]:
    """The update of `entities` by key (none: no statement), values read as `insert_entities` reads them: as
    `update_rows` (1, 2, 4 or 8 rows), but from `UNNEST_FROM` rows on, one array per column."""
    rows = [[value(e, name) for name, _ in typed] for e in entities]
    if not rows:
        return []
    if len(rows) < UNNEST_FROM or _nested([kind for _, kind in typed], rows):
        return [update_rows(table, typed, rows)]
    return [(_update_arrays_sql(table, typed), [list(column) for column in zip(*rows, strict=True)])]


def write_pending(
    table: str, columns: str, typed: Typed, pending: Pending[Any], value: Value = getattr
) -> list[Fragment]:
    """A table's buffered writes at commit: the insert of the rows added, then the update of the rows saved."""
    return [*insert_entities(table, columns, pending.new.values(), value),
            *update_entities(table, typed, pending.dirty.values(), value)]


_PARAM = re.compile(r"\$(\d+)")


def compose(fragments: list[Fragment]) -> Fragment:
    """Join data-modifying statements into one `WITH` statement (one round trip).

    Each fragment numbers its own parameters from $1; they are renumbered here.
    Foreign keys are checked at the end of the statement, so the order of the
    fragments only has to be a valid one for readers.
    """
    args = [value for _, values in fragments for value in values]
    return _statement(tuple((sql, len(values)) for sql, values in fragments)), args


def statements(fragments: list[Fragment]) -> list[Fragment]:
    """`compose` the fragments, in order, into as few statements as keep each within `MAX_PARAMETERS`
    (one, but for the largest writes). Parents come before children in the fragments, so a foreign key
    checked at the end of one statement finds its row written by that statement or an earlier one."""
    groups: list[list[Fragment]] = [[]]
    count = 0
    for fragment in fragments:
        if groups[-1] and count + len(fragment[1]) > MAX_PARAMETERS:
            groups.append([])
            count = 0
        groups[-1].append(fragment)
        count += len(fragment[1])
    return [compose(group) for group in groups if group]


@functools.lru_cache(maxsize=256)
def _statement(shape: tuple[tuple[str, int], ...]) -> str:
    """The composed SQL for a sequence of (fragment, parameter count); few shapes recur."""
    parts, offset = [], 0
    for index, (sql, count) in enumerate(shape):
        parts.append(f"w{index} AS ({_PARAM.sub(functools.partial(_shift, offset), sql)})")
        offset += count
    return "WITH " + ",\n".join(parts) + "\nSELECT 1"


def _shift(offset: int, match: re.Match[str]) -> str:
    return f"${int(match.group(1)) + offset}"

"""adapters.postgres.rows: the one write of a unit of work, split only where asyncpg's parameter limit
requires it, and large updates sent as one array per column (a statement text that does not vary)."""

from __future__ import annotations

from types import SimpleNamespace

from adapters.postgres.rows import MAX_PARAMETERS, UNNEST_FROM, insert_entities, statements, update_entities

TYPED = (("id", "uuid"), ("balance", "bigint"))


def test_a_small_write_is_one_statement() -> None:
    fragments = [*insert_entities("t", "a, b", [SimpleNamespace(a=1, b=2)] * 3), ("UPDATE u SET x = $1", [9])]
    [(sql, args)] = statements(fragments)
    assert sql.startswith("WITH w0 AS (INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4), ($5, $6))")
    assert "w1 AS (UPDATE u SET x = $7)" in sql
    assert args == [1, 2, 1, 2, 1, 2, 9]


def test_a_write_beyond_the_parameter_limit_is_split_in_order() -> None:
    rows = [SimpleNamespace(a=n, b=n, c=n) for n in range(30_000)]  # 90,000 parameters
    fragments = insert_entities("t", "a, b, c", rows)
    assert [len(args) for _, args in fragments] == [32_766, 32_766, 24_468]
    written = statements([*fragments, ("UPDATE u SET x = $1", [0])])
    assert len(written) == 3
    assert all(len(args) <= MAX_PARAMETERS for _, args in written)
    assert [value for _, args in written for value in args][:-1:3] == list(range(30_000))
    assert written[-1][0].endswith("w1 AS (UPDATE u SET x = $24469)\nSELECT 1")


def test_many_updated_rows_go_as_one_array_per_column() -> None:
    few = update_entities("accounts", TYPED, [SimpleNamespace(id=n, balance=n * 10) for n in range(UNNEST_FROM - 1)])
    assert "VALUES" in few[0][0] and len(few[0][1]) == 2 * (UNNEST_FROM - 1)
    [(sql, args)] = update_entities("accounts", TYPED, [SimpleNamespace(id=n, balance=n * 10) for n in range(50)])
    assert sql == ("UPDATE accounts t SET balance = v.balance FROM unnest($1::uuid[], $2::bigint[]) AS v(id, balance) "
                   "WHERE t.id = v.id")
    assert args == [list(range(50)), [n * 10 for n in range(50)]]
    assert update_entities("accounts", TYPED, []) == []


def test_a_column_every_row_shares_goes_once_as_a_scalar() -> None:
    from adapters.postgres.rows import insert_arrays

    rows = [(n, "t1", {"a": 1}, {"b": n % 2}, {"c": 1}) for n in range(UNNEST_FROM)]
    sql, args = insert_arrays("t", "id, tenant, meta, data, raw", ("uuid", "text", "jsonb", "jsonb", "json"), rows)
    assert sql == ("INSERT INTO t (id, tenant, meta, data, raw) SELECT u.c0, $2::text, $3::jsonb, u.c3, u.c4 "
                   "FROM unnest($1::uuid[], $4::jsonb[], $5::json[]) AS u(c0, c3, c4)")
    assert args == [list(range(UNNEST_FROM)), "t1", {"a": 1}, [{"b": n % 2} for n in range(UNNEST_FROM)],
                    [{"c": 1}] * UNNEST_FROM]  # json keeps its text as given: never folded
    mixed = [(1, 0), (1, False)]  # equal values of another type are not the same value
    assert insert_arrays("t", "a, b", ("bigint", "bigint"), mixed)[1] == [1, [0, False]]
    assert insert_arrays("t", "a, b", ("bigint", "bigint"), [(1, 2)] * 3) == (
        "INSERT INTO t (a, b) SELECT u.c0, $2::bigint FROM unnest($1::bigint[]) AS u(c0)", [[1, 1, 1], 2])

"""adapters.postgres.rows: the one write of a unit of work, split only where asyncpg's parameter limit
requires it, and typed writes sent as one array per column (a statement text that does not vary)."""

from __future__ import annotations

from types import SimpleNamespace

from adapters.postgres.rows import (
    MAX_PARAMETERS,
    folding,
    insert_arrays,
    insert_entities,
    statements,
    update_entities,
)

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


def test_updated_rows_go_as_values_padded_to_a_power_of_two_and_as_arrays_beyond_a_group() -> None:
    """`VALUES` with its row count known (the planner probes the key's index for each row), padded with rows of
    NULLs that match nothing, so that a group's update has one of a handful of texts."""
    [(one, args)] = update_entities("accounts", TYPED, [SimpleNamespace(id=1, balance=10)])
    assert one == ("UPDATE accounts t SET balance = v.balance FROM (VALUES ($1::uuid, $2::bigint)) AS v(id, balance) "
                   "WHERE t.id = v.id") and args == [1, 10]
    [(three, args)] = update_entities("accounts", TYPED, [SimpleNamespace(id=n, balance=n * 10) for n in range(3)])
    assert three.endswith("FROM (VALUES ($1::uuid, $2::bigint), ($3, $4), ($5, $6), ($7, $8)) AS v(id, balance) "
                          "WHERE t.id = v.id")
    assert args == [0, 0, 1, 10, 2, 20, None, None]
    texts = {update_entities("accounts", TYPED, [SimpleNamespace(id=n, balance=n)] * n)[0][0] for n in range(1, 200)}
    assert len(texts) == 5  # 1, 2, 4 and 8 rows, then arrays
    [(sql, args)] = update_entities("accounts", TYPED, [SimpleNamespace(id=n, balance=n * 10) for n in range(9)])
    assert sql == ("UPDATE accounts t SET balance = v.balance FROM unnest($1::uuid[], $2::bigint[]) AS v(id, balance) "
                   "WHERE t.id = v.id")
    assert args == [list(range(9)), [n * 10 for n in range(9)]]
    assert update_entities("accounts", TYPED, []) == []
    nested = (("id", "uuid"), ("events", "text[]"))  # unnest would flatten an array of arrays: VALUES
    subs = [SimpleNamespace(id=n, events=["a"]) for n in range(130)]
    [(sql, args)] = update_entities("subs", nested, subs)
    assert "VALUES ($1::uuid, $2::text[]), ($3, $4)" in sql and args[:4] == [0, ["a"], 1, ["a"]]


def test_a_group_commit_writes_one_of_a_handful_of_texts_whatever_its_size_and_values() -> None:
    """The composed write of a group is one of a few texts (a power of two of updated rows), whatever values its
    rows share: one prepare per kind of work and size class, not one per combination of row counts and shared
    columns (each a plan cached in every backend)."""
    def write(count: int, tenants: int = 1) -> str:
        rows = [SimpleNamespace(id=n, tenant=f"t{n % tenants}", meta={}) for n in range(count)]
        fragments = [*insert_entities("t", "id, tenant, meta", rows, types=("uuid", "text", "jsonb")),
                     *update_entities("accounts", TYPED, [SimpleNamespace(id=n, balance=n) for n in range(4)])]
        [(sql, args)] = statements(fragments)
        assert args[:3] == [list(range(count)), [f"t{n % tenants}" for n in range(count)], [{}] * count]
        return sql

    texts = {write(count, tenants) for count in (1, 2, 7, 9, 31, 32, 64, 200) for tenants in (1, 2)}
    assert texts == {write(1)}
    assert "INSERT INTO t (id, tenant, meta) VALUES" not in write(1)


def test_in_a_batch_s_write_a_column_every_row_shares_goes_once_as_a_scalar() -> None:
    rows = [(n, "t1", {"a": 1}, {"b": n % 2}, {"c": 1}) for n in range(3)]
    with folding(True):
        sql, args = insert_arrays("t", "id, tenant, meta, data, raw", ("uuid", "text", "jsonb", "jsonb", "json"), rows)
        mixed = insert_arrays("t", "a, b", ("bigint", "bigint"), [(1, 0), (1, False)])
        same = insert_arrays("t", "a, b", ("bigint", "bigint"), [(1, 2)] * 3)
    assert sql == ("INSERT INTO t (id, tenant, meta, data, raw) SELECT u.c0, $2::text, $3::jsonb, u.c3, u.c4 "
                   "FROM unnest($1::uuid[], $4::jsonb[], $5::json[]) AS u(c0, c3, c4)")
    assert args == [[0, 1, 2], "t1", {"a": 1}, [{"b": 0}, {"b": 1}, {"b": 0}],
                    [{"c": 1}] * 3]  # json keeps its text as given: never folded
    assert mixed[1] == [1, [0, False]]  # equal values of another type are not the same value
    assert same == ("INSERT INTO t (a, b) SELECT u.c0, $2::bigint FROM unnest($1::bigint[]) AS u(c0)", [[1, 1, 1], 2])
    assert insert_arrays("t", "a, b", ("bigint", "bigint"), [(1, 2)] * 300) == (  # outside a batch: never
        "INSERT INTO t (a, b) SELECT u.c0, u.c1 FROM unnest($1::bigint[], $2::bigint[]) AS u(c0, c1)",
        [[1] * 300, [2] * 300])


def test_rows_with_a_json_array_in_a_jsonb_column_go_as_values_not_flattened() -> None:
    """asyncpg would take a list inside a `jsonb[]` array for a dimension of it: `[{"x": 1}]` stored as `{"x": 1}`."""
    rows = [(1, [{"x": 1}]), (2, {"y": 2})]
    sql, args = insert_arrays("t", "id, secrets", ("uuid", "jsonb"), rows)
    assert sql == "INSERT INTO t (id, secrets) VALUES ($1, $2), ($3, $4)" and args == [1, [{"x": 1}], 2, {"y": 2}]
    [(sql, args)] = update_entities("t", (("id", "uuid"), ("secrets", "jsonb")),
                                    [SimpleNamespace(id=1, secrets=[]), SimpleNamespace(id=2, secrets={})])
    assert "VALUES ($1::uuid, $2::jsonb), ($3, $4)" in sql and args == [1, [], 2, {}]

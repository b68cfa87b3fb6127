"""bench/run.py's reading of its own results: the API against the floor, the issue 12 verdict, and the profile's
steps. docs/benchmarks.md quotes these figures, so a wrong pairing or a step that never matches would mislead."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def row(target: str, scenario: str, clients: int, rate: float, p99: float) -> dict[str, Any]:
    return {"scenario": scenario, "clients": clients, "target": target, "label": target, "rate": rate,
            "p50": p99 / 2, "p99": p99, "mean": p99 / 2, "statuses": {201: 1}, "errors": {}, "gen_cpu": 5.0,
            "api_cpu": 50.0, "db_cpu": 50.0, "other_cpu": 1.0}


def test_each_floor_row_is_paired_with_the_api_row_of_its_scenario_and_clients(run: ModuleType) -> None:
    rows = [row("http", "uniform", 8, 600, 20), row("floor", "uniform", 8, 1500, 10),
            row("http", "uniform", 32, 500, 120), row("floor", "uniform", 32, 2000, 30),
            row("fn", "uniform", 32, 800, 70), row("floor", "hot", 32, 800, 130)]  # hot: no API row
    assert run.floor_rows(rows) == [
        ["uniform", "8", "1500", "5.0", "10.0", "600", "10.0", "20.0", "0.40"],
        ["uniform", "32", "2000", "15.0", "30.0", "500", "60.0", "120.0", "0.25"],
    ]
    assert run.ratio_text(rows[3], rows) == "0.25"
    assert "| API/floor |" in run.render_markdown(rows)


@pytest.mark.parametrize(("api", "p99", "expected"), [
    (1000, 49.0, "target >= 0.5: MET); p99 49.0 ms (target < 50 ms: MET"),
    (999, 50.0, "target >= 0.5: NOT MET); p99 50.0 ms (target < 50 ms: NOT MET"),
])
def test_the_issue_12_verdict(run: ModuleType, api: float, p99: float, expected: str) -> None:
    rows = [row("http", "uniform", 32, api, p99), row("floor", "uniform", 32, 2000, 30)]
    (line,) = run.verdicts(rows)
    assert expected in line


def test_profile_steps_match_py_spys_qualified_names(run: ModuleType, tmp_path: Path) -> None:
    loop = "_run_module_as_main (<frozen runpy>:198);_run_server_forever (sanic/server/runners.py:210)"
    stacks = tmp_path / "stacks.txt"
    stacks.write_text("\n".join([
        f"{loop};run_idempotent (core/usecases/idempotency.py:44);PgIdempotencyKeys.claim "
        "(adapters/postgres/idempotency.py:50);Connection._do_execute (asyncpg/connection.py:2069) 6",
        f"{loop};run_idempotent (core/usecases/idempotency.py:43);PgUnitOfWork.__aexit__ (adapters/postgres/uow.py:97);"
        "PgUnitOfWork._commit (adapters/postgres/uow.py:130);Transaction.commit (asyncpg/transaction.py:219) 3",
        f"{loop};http1_request_header (http1_request_header:84) 1",
    ]) + "\n")
    shares = {line[8:]: float(line[:6]) for line in run.profile_steps(stacks).splitlines()[2:]}
    assert shares["unit-of-work task (run_idempotent), in all"] == 90.0
    assert shares["  idempotency claim (advisory lock + lookup)"] == 60.0
    assert shares["    of which COMMIT (Transaction.commit)"] == 30.0
    assert shares["asyncpg, all (encode, send, decode; pool)"] == 90.0
    assert shares["no frame of ours: Sanic's HTTP, the event loop"] == 10.0
    assert shares["  make_transfer"] == 0.0


def test_without_pgbench_its_rows_are_skipped_with_a_reason_and_the_api_rows_still_run(
        run: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # no pgbench anywhere: shutil.which finds nothing
    args = run.parse_args([])  # what `make bench` runs: the default scripts 7, fn, api
    requested = args.pgbench_scripts.split(",")
    assert requested == ["7", "fn", "api"]
    pgbench, scripts, skipped = run.pgbench_selection(requested)
    assert (pgbench, scripts) == (None, [])
    assert skipped.startswith("pgbench not found on PATH: skipping the pgbench rows (pgbench 7 statements, "
                              "pgbench 1 call (function), pgbench API's own SQL); the API and floor rows still run")
    assert "postgresql-client" in skipped
    assert run.planned_targets(args, scripts) == ["http", "floor"]
    assert run.planned_targets(run.parse_args(["--no-floor"]), scripts) == ["http"]


def test_with_pgbench_its_rows_follow_the_api_and_the_floor(run: ModuleType, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    pgbench = tmp_path / "pgbench"
    pgbench.write_text("#!/bin/sh\n")
    pgbench.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert run.pgbench_selection(["7", "fn"]) == (str(pgbench), ["7", "fn"], None)
    assert run.planned_targets(run.parse_args([]), ["7", "fn"]) == ["http", "floor", "7", "fn"]
    assert run.pgbench_selection([]) == (None, [], None)  # --pgbench-scripts none: nothing to say

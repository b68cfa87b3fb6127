"""bench/run.py's reading of its own results: the API against the floor, the issue 12 verdict, and the profile's
steps. docs/benchmarks.md quotes these figures, so a wrong pairing or a step that never matches would mislead."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.bench_modules import load_bench

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run() -> ModuleType:
    return load_bench("run")


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


#: Posts a two-leg transfer with core.ledger.post and prints each entry's hash and each account's chain head in hex.
POST_ONE = """
from datetime import UTC, datetime
from uuid import uuid4
from core.accounts import Account
from core.ledger import post
now = datetime.now(UTC)
a, b = (Account(id=uuid4(), tenant_id=uuid4(), kind="user", currency="USD", balance=100, created_at=now,
                updated_at=now) for _ in range(2))
print(*[e.hash.hex() or "-" for e in post([(a, -10), (b, 10)], at=now)], a.last_entry_hash.hex() or "-")
"""


@pytest.mark.parametrize("what_if", [False, True])
def test_what_if_no_hash_switches_the_api_s_hashing_off_and_only_then(run: ModuleType, what_if: bool) -> None:
    """--what-if no-hash measures the product without its hash chain: the API's processes get bench/no_hash first
    on PYTHONPATH, whose sitecustomize makes every hash empty; without the what-if, nothing changes."""
    import subprocess
    import sys

    args = run.parse_args(["--what-if", "no-hash"] if what_if else [])
    env = run.api_env(args, "postgresql://nowhere/db", 1)
    assert ("PYTHONPATH" in env and env["PYTHONPATH"].split(":")[0] == str(ROOT / "bench" / "no_hash")) is what_if
    out = subprocess.run([sys.executable, "-c", POST_ONE], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=60, check=True).stdout.split()
    if what_if:
        assert out == ["-", "-", "-"]
    else:
        assert all(len(h) == 64 for h in out) and out[0] == out[2]  # the debit's hash is its account's chain head


def test_pairs_summary_reports_median_ratios_and_their_spread(run: ModuleType) -> None:
    def side(rate: float, api: float, db: float) -> dict[str, Any]:
        return {"rate": rate, "api_seconds": api, "backend_seconds": db, "statuses": {201: 1000}}

    pairs = []
    for product, what_if in [((500, 1.0, 1.0), (520, 0.98, 0.97)), ((400, 1.1, 1.0), (400, 1.0, 1.0)),
                             ((450, 1.0, 0.9), (470, 1.0, 0.88))]:
        pair = {"scenario": "hot", "what_ifs": ["no-hash"], "product": side(*product), "what_if": side(*what_if),
                "product_ms": run.cpu_per_transfer(side(*product)),
                "what_if_ms": run.cpu_per_transfer(side(*what_if))}
        pair["product_cpu"], pair["what_if_cpu"] = sum(pair["product_ms"]), sum(pair["what_if_ms"])
        pairs.append(pair)
    assert pairs[0]["product_ms"] == (1.0, 1.0)  # ms per completed transfer
    lines = run.pair_summary(pairs, "hot")
    # throughput ratios 0.962, 1.000, 0.957; CPU ratios 2/1.95 = 1.026, 2.1/2 = 1.05, 1.9/1.88 = 1.011
    assert "throughput         median 0.962 (quartiles 0.959-0.981, range 0.957-1.000)" in lines[1]
    assert "CPU per transfer   median 1.026" in lines[2]
    assert "+2.6% CPU per transfer" in lines[-1] and "+3.8% of throughput" in lines[-1]
    assert run.pair_summary(pairs, "uniform") == []

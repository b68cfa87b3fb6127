"""The chaos suite's PostgreSQL (one private server for the session, a fresh database per scenario) and its
results: with CHAOS_REPORT naming a file, one JSON line per scenario is appended to it (read by run.py)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import free_port
from tests.e2e.isolated import PrivatePostgres


@pytest.fixture(scope="session")
def chaos_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivatePostgres]:
    """A PostgreSQL server of the suite's own on its own port: scenarios restart it and take it down."""
    server = PrivatePostgres(tmp_path_factory.mktemp("chaos-postgres"), port=free_port())
    try:
        yield server.start()
    finally:
        server.stop()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """A scenario's row once its test has run (or failed to set up or tear down)."""
    properties = dict(report.user_properties)
    target = os.environ.get("CHAOS_REPORT")
    if not target or "scenario" not in properties or not (report.when == "call" or report.failed):
        return
    row = {**properties, "phase": report.when, "outcome": report.outcome, "seconds": round(report.duration, 1)}
    if report.failed:
        lines = report.longreprtext.strip().splitlines()
        row["error"] = next((line for line in lines if line.startswith("E ")), lines[-1] if lines else "")[:500]
    with Path(target).open("a") as out:
        out.write(json.dumps(row, default=str) + "\n")

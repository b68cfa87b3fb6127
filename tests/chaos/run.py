"""`make chaos [RUNS=N]`: the fault-injection suite N times in a row, stopping at the first failure, then its
results table (Markdown, as in docs/reliability.md). `--short` runs the short version `make test` runs."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.chaos.scenarios import COMMON

ROOT = Path(__file__).resolve().parents[2]


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return int(text)


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(prog="python -m tests.chaos.run", description=__doc__)
    parse.add_argument("--runs", type=_positive, default=1, help="run the whole suite this many times in a row")
    parse.add_argument("--short", action="store_true", help="the short version (as in `make test`)")
    parse.add_argument("-k", dest="select", help="only the scenarios matching this pytest -k expression")
    parse.add_argument("--markdown", type=Path, help="also write the results table to this file")
    return parse


def _rows(report: Path, number: int) -> list[dict[str, Any]]:
    if not report.exists():
        return []
    return [{**json.loads(line), "run": number} for line in report.read_text().splitlines() if line.strip()]


def _failed_checks(row: dict[str, Any]) -> str:
    failed = [f"{check}: {detail}" for check, ok, detail in row.get("verdicts", []) if not ok]
    return "; ".join(failed) or row.get("error", "")


def run_table(rows: list[dict[str, Any]]) -> str:
    """One run: each scenario's outcome, duration and, if it failed, why."""
    lines = [f"  {'scenario':<18} {'result':<8} {'seconds':>7}  failed checks"]
    lines += [f"  {r['scenario']:<18} {r['outcome']:<8} {r['seconds']:>7}  {_failed_checks(r)[:300]}" for r in rows]
    return "\n".join(lines)


def summary(rows: list[dict[str, Any]], runs: int) -> str:
    """Every scenario over the runs made: what is injected, what is asserted, the result and the durations."""
    lines = ["| scenario | injected | asserted (besides the common checks) | result | duration |",
             "| --- | --- | --- | --- | --- |"]
    for name in dict.fromkeys(r["scenario"] for r in rows):
        mine = [r for r in rows if r["scenario"] == name]
        passed = sum(r["outcome"] == "passed" for r in mine)
        failures = [f"run {r['run']}: {_failed_checks(r)[:200]}" for r in mine if r["outcome"] != "passed"]
        result = f"passed {passed}/{len(mine)}" + (f"; failed {'; '.join(failures)}" if failures else "")
        seconds = [float(r["seconds"]) for r in mine]
        duration = f"{statistics.median(seconds):.0f} s ({min(seconds):.0f}–{max(seconds):.0f})"
        lines.append(f"| {name} | {mine[0]['injected']} | {mine[0]['asserted']} | {result} | {duration} |")
    profile = rows[0]["profile"] if rows else "?"
    return "\n".join([*lines, "", f"{runs} run(s), profile {profile}. Common checks after every scenario: {COMMON}."])


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    rows: list[dict[str, Any]] = []
    code, made = 0, 0
    with tempfile.TemporaryDirectory(prefix="payments-chaos-") as scratch:
        for number in range(1, args.runs + 1):
            report = Path(scratch) / f"run{number}.jsonl"
            command = [sys.executable, "-m", "pytest", "tests/chaos", "-q", "-x", "-p", "no:cacheprovider",
                       "-m", "not chaos" if args.short else "chaos", *(["-k", args.select] if args.select else [])]
            print(f"== chaos run {number} of {args.runs}: {' '.join(command[2:])}", flush=True)
            code = subprocess.run(command, cwd=ROOT, env={**os.environ, "CHAOS_REPORT": str(report)},
                                  check=False).returncode
            these, made = _rows(report, number), number
            rows += these
            print(f"== run {number}: {'passed' if code == 0 else 'FAILED'}\n{run_table(these)}", flush=True)
            if code != 0:
                print(f"== stopping at the first failure (run {number} of {args.runs})")
                break
    table = summary(rows, made)
    print(f"\n{table}")
    if args.markdown is not None:
        args.markdown.write_text(table + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())

"""bench/soak.py's arithmetic (memory growth after the warm-up, the verdict) and bench/run.py's mixed-scenario
summary: docs/benchmarks.md quotes their verdicts, so a wrong baseline or a missed reason would mislead."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from tests.bench_modules import load_bench


@pytest.fixture(scope="module")
def soak() -> ModuleType:
    return load_bench("soak")


@pytest.fixture(scope="module")
def run() -> ModuleType:
    return load_bench("run", "bench_run_mixed")


def test_growth_ignores_the_warm_up_and_compares_medians_of_the_first_and_last_samples(soak: ModuleType) -> None:
    # fast growth during the 120 s warm-up, then flat around 100 with one spike at the end
    samples = [(0.0, 50.0), (60.0, 80.0), (110.0, 95.0)] + [(120.0 + 10 * i, 100.0) for i in range(20)]
    samples[-2] = (samples[-2][0], 300.0)  # one spike among the last three: the median ignores it
    assert soak.growth(samples, 120.0) == pytest.approx(0.0)


def test_steady_growth_after_the_warm_up_is_measured(soak: ModuleType) -> None:
    samples = [(10.0 * i, 100.0 + i) for i in range(60)]  # +1 per sample, warm-up ends at sample 12
    # first three after the warm-up: 112, 113, 114 (median 113); last three: 157, 158, 159 (median 158)
    assert soak.growth(samples, 120.0) == pytest.approx(100.0 * 45 / 113)


def test_too_few_samples_after_the_warm_up_give_no_growth(soak: ModuleType) -> None:
    assert soak.growth([(10.0 * i, 1.0) for i in range(17)], 120.0) is None  # 5 samples at or after 120 s


@pytest.mark.parametrize(("growths", "errors", "not_sent", "clean", "passed", "reasons"), [
    ({"api": 2.0, "worker1": -1.0}, 0, 0, True, True, []),
    ({"api": 10.0}, 0, 0, True, False, ["api grew 10.0 % (limit 10 %)"]),
    ({"api": None}, 0, 0, True, False, ["api: too few samples after the warm-up"]),
    ({"api": 1.0}, 3, 0, True, False, ["3 error(s)"]),
    ({"api": 1.0}, 0, 7, True, False, ["7 request(s) not sent (more than --max-outstanding in flight)"]),
    ({"api": 1.0}, 0, 0, False, False, ["payments ledger check is not clean"]),
])
def test_the_verdict(soak: ModuleType, growths: dict[str, float | None], errors: int, not_sent: int, clean: bool,
                     passed: bool, reasons: list[str]) -> None:
    assert soak.verdict(growths, errors, not_sent, clean, 10.0) == (passed, reasons)


def side(rate: float, p99: float, statuses: dict[int, int] | None = None) -> dict[str, Any]:
    return {"rate": rate, "p50": p99 / 4, "p90": p99 / 2, "p99": p99, "statuses": statuses or {201: 10},
            "errors": {}, "other_cpu": 3.0, "clients": 16}


def test_mixed_summary_reports_the_median_ratio_and_the_verdict(run: ModuleType) -> None:
    rounds = [{"round": i + 1, "order": "mixed-alone", "hot": side(100, 300), "uniform": side(200, p99),
               "alone": side(300, 40.0), "ratio": p99 / 40.0} for i, p99 in enumerate((60.0, 100.0, 72.0))]
    rounds[1]["hot"]["statuses"] = {201: 9, 422: 1}
    lines = run.mixed_summary(rounds, 32, 10.0)
    assert lines[-1] == "MIXED MET: the uniform half's p99 in the mix / alone: median 1.80 (runs 1.50, 2.50, 1.80); " \
                        "target < 2"
    assert "{'hot:422': 1}" in lines[4]
    rounds[0]["ratio"] = 2.6
    assert run.mixed_summary(rounds, 32, 10.0)[-1].startswith("MIXED NOT MET: ")


def test_postgres_is_measured_per_backend_so_a_pool_that_opens_more_connections_is_not_growth(
        soak: ModuleType) -> None:
    few = {"rss": 900 * 2**20, "anon": 40 * 2**20, "processes": 4}
    more = {"rss": 1800 * 2**20, "anon": 80 * 2**20, "processes": 8}
    assert soak.measured("postgres", few) == soak.measured("postgres", more) == 10 * 2**20
    assert soak.measured("postgres", {"rss": 0, "anon": 0, "processes": 0}) == 0
    assert soak.measured("worker1", more) == 1800 * 2**20  # every other group: the RSS of its process tree

"""The supervisor's restart backoff and how it names a child's end."""

from __future__ import annotations

import pytest

from payments.supervisor import Backoff, describe


@pytest.mark.parametrize(("failures", "low", "high"), [(1, 0.5, 1.0), (2, 1.0, 2.0), (5, 8.0, 16.0), (6, 15.0, 30.0),
                                                       (50, 15.0, 30.0)])
def test_the_restart_delay_doubles_with_jitter_up_to_the_cap(failures: int, low: float, high: float) -> None:
    backoff = Backoff(first=1.0, cap=30.0)
    delays = [backoff.delay(failures) for _ in range(200)]
    assert all(low <= delay <= high for delay in delays)
    assert max(delays) - min(delays) > (high - low) / 10  # jittered: restarts of many children spread out


def test_an_exit_is_named_by_its_code_or_its_signal() -> None:
    assert describe(3) == "exit code 3"
    assert describe(0) == "exit code 0"
    assert describe(-9) == "signal SIGKILL"
    assert describe(-15) == "signal SIGTERM"

"""The `mock_outcome` steering language shared by the mock provider server and the in-memory provider."""

from __future__ import annotations

from typing import Literal

import attrs

CHARGE_OUTCOME = "mock_outcome"
REFUND_OUTCOME = "mock_refund_outcome"
MAX_TRANSIENT_FAILURES = 1000
#: `metadata.mock_delay_ms`: the charge or refund is recorded at once and answered this much later, so a
#: test can kill a worker while the provider's answer is on its way.
DELAY = "mock_delay_ms"


#: `metadata.mock_settled_amount`: the settlement report gives this many minor units for the charge or refund
#: instead of its amount (an amount mismatch, produced for real).
SETTLED_AMOUNT = "mock_settled_amount"


def settled_amount(metadata: dict[str, str], amount: int) -> int:
    """The amount a settlement report gives: `amount`, unless the metadata asks for another (1 to 2^53-1)."""
    asked = metadata.get(SETTLED_AMOUNT, "")
    return int(asked) if asked.isascii() and asked.isdigit() and 0 < int(asked) <= 2**53 - 1 else amount


def answer_delay(value: str | None) -> float:
    """Seconds to hold a recorded answer (0 to 60 s; anything else is no delay)."""
    if value is None or not (value.isascii() and value.isdigit()):
        return 0.0
    return min(int(value), 60_000) / 1000

OutcomeKind = Literal["succeed", "decline", "fail_transient", "timeout"]


@attrs.frozen
class Outcome:
    """What a mock provider does with a request: succeed, decline, fail `failures` times first, or hang."""

    kind: OutcomeKind = "succeed"
    failures: int = 0


def parse_outcome(value: str | None) -> Outcome:
    """Parse `succeed` (also for None or ""), `decline`, `fail_transient:N` or `timeout`; ValueError otherwise."""
    if value is None or value in ("", "succeed"):
        return Outcome()
    if value == "decline":
        return Outcome("decline")
    if value == "timeout":
        return Outcome("timeout")
    prefix, _, count = value.partition(":")
    if prefix == "fail_transient" and count.isdigit() and count.isascii() and int(count) <= MAX_TRANSIENT_FAILURES:
        return Outcome("fail_transient", int(count))
    raise ValueError(f"unknown mock outcome {value!r}: use succeed, decline, fail_transient:N "
                     f"(N ≤ {MAX_TRANSIENT_FAILURES}) or timeout")


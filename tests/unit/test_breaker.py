"""BreakerProvider: a rolling failure-rate window, CircuitOpen while open, one half-open probe at a time."""

from __future__ import annotations

import asyncio
import contextlib
from uuid import uuid4

import pytest

from adapters.providers.breaker import BreakerProvider
from core.providers import (
    ChargeRequest,
    CircuitOpen,
    ProviderDeclined,
    ProviderResult,
    ProviderUnavailable,
    RefundRequest,
)
from tests.fakes import FakeMonotonic

pytestmark = pytest.mark.timeout(30)

RECOVERY = 30.0


class ScriptedProvider:
    """A provider answering `outcome` ("ok", "down", "timeout", "declined"), read when each call starts."""

    name = "fake"

    def __init__(self) -> None:
        self.outcome = "ok"
        self.calls = 0
        self.gate: asyncio.Event | None = None  # when set, calls starting now wait on it before answering

    async def _answer(self) -> ProviderResult:
        self.calls += 1
        number, outcome, gate = self.calls, self.outcome, self.gate
        if gate is not None:
            await gate.wait()
        if outcome == "down":
            raise ProviderUnavailable("503 from provider")
        if outcome == "timeout":
            raise TimeoutError
        if outcome == "declined":
            raise ProviderDeclined("card declined")
        return ProviderResult(f"ref-{number}")

    async def charge(self, request: ChargeRequest) -> ProviderResult:
        return await self._answer()

    async def refund(self, request: RefundRequest) -> ProviderResult:
        return await self._answer()

    async def find_charge(self, request: ChargeRequest) -> ProviderResult | None:
        return None if self.outcome == "none" else await self._answer()

    async def find_refund(self, request: RefundRequest) -> ProviderResult | None:
        return None if self.outcome == "none" else await self._answer()


def charge_request() -> ChargeRequest:
    return ChargeRequest(payment_id=uuid4(), amount=100, currency="USD", description=None, metadata={})


def refund_request() -> RefundRequest:
    return RefundRequest(refund_id=uuid4(), payment_id=uuid4(), charge_reference="ch_1", amount=1, currency="USD",
                         reason=None, metadata={})


class Rig:
    """A breaker (window 10, rate 0.6) around a scripted provider, on a hand-moved clock."""

    def __init__(self) -> None:
        self.clock = FakeMonotonic()
        self.inner = ScriptedProvider()
        self.breaker = BreakerProvider(self.inner, window=10, failure_rate=0.6, recovery_timeout=RECOVERY,
                                       clock=self.clock)

    async def call(self, outcome: str) -> None:
        """One charge the provider answers with `outcome`, whatever the breaker makes of it."""
        self.inner.outcome = outcome
        with contextlib.suppress(ProviderUnavailable, ProviderDeclined, TimeoutError):
            await self.breaker.charge(charge_request())

    async def calls(self, *outcomes: str) -> None:
        for outcome in outcomes:
            await self.call(outcome)

    async def open_circuit(self) -> None:
        await self.calls(*["down"] * 10)
        assert self.breaker.state == "open"

    async def started(self, count: int) -> None:
        """Wait until `count` calls have reached the provider."""
        while self.inner.calls < count:
            await asyncio.sleep(0)


@pytest.fixture
def rig() -> Rig:
    return Rig()


async def test_it_passes_calls_and_answers_through(rig: Rig) -> None:
    assert rig.breaker.name == "fake"
    assert await rig.breaker.charge(charge_request()) == ProviderResult("ref-1")
    rig.inner.outcome = "declined"
    with pytest.raises(ProviderDeclined):
        await rig.breaker.charge(charge_request())
    rig.inner.outcome = "down"
    with pytest.raises(ProviderUnavailable) as raised:
        await rig.breaker.charge(charge_request())
    assert not isinstance(raised.value, CircuitOpen)
    assert rig.breaker.state == "closed"
    assert rig.breaker.remaining_open_seconds == 0.0


async def test_six_failures_in_ten_open_it(rig: Rig) -> None:
    await rig.calls("ok", "down", "ok", "down", "timeout", "ok", "down", "ok", "down")
    assert rig.breaker.state == "closed"
    await rig.call("down")
    assert rig.breaker.state == "open"
    assert rig.breaker.remaining_open_seconds == RECOVERY


async def test_five_failures_in_ten_do_not(rig: Rig) -> None:
    await rig.calls(*["down", "ok"] * 5)
    assert rig.breaker.state == "closed"


async def test_it_never_opens_before_a_full_window(rig: Rig) -> None:
    await rig.calls(*["down"] * 9)
    assert rig.breaker.state == "closed"
    assert rig.inner.calls == 9


async def test_only_the_last_ten_calls_count(rig: Rig) -> None:
    await rig.calls(*["down"] * 5, *["ok"] * 10, *["down"] * 5)
    assert rig.breaker.state == "closed"  # the first five failures rolled out: 5 of the last 10
    await rig.call("down")  # 6 of the last 10, though only 11 of all 21
    assert rig.breaker.state == "open"


async def test_declines_do_not_count(rig: Rig) -> None:
    await rig.calls(*["declined"] * 20, *["down"] * 5, *["declined"] * 5)
    assert rig.breaker.state == "closed"


async def test_open_raises_circuit_open_without_calling(rig: Rig) -> None:
    await rig.open_circuit()
    before = rig.inner.calls
    rig.inner.outcome = "ok"
    rig.clock.advance(RECOVERY - 1)
    with pytest.raises(CircuitOpen, match="circuit open for provider fake"):
        await rig.breaker.charge(charge_request())
    with pytest.raises(CircuitOpen):
        await rig.breaker.refund(refund_request())
    assert rig.inner.calls == before
    assert rig.breaker.remaining_open_seconds == 1.0


async def test_half_open_lets_one_probe_through(rig: Rig) -> None:
    await rig.open_circuit()
    rig.clock.advance(RECOVERY)
    assert rig.breaker.state == "half_open"
    assert rig.breaker.remaining_open_seconds == 0.0
    rig.inner.outcome, rig.inner.gate = "ok", asyncio.Event()
    before = rig.inner.calls
    probe = asyncio.create_task(rig.breaker.charge(charge_request()))
    await rig.started(before + 1)
    with pytest.raises(CircuitOpen):
        await rig.breaker.charge(charge_request())
    assert rig.inner.calls == before + 1
    rig.inner.gate.set()
    assert isinstance(await probe, ProviderResult)
    assert rig.breaker.state == "closed"


async def test_a_successful_probe_closes_with_a_fresh_window(rig: Rig) -> None:
    await rig.open_circuit()
    rig.clock.advance(RECOVERY)
    await rig.call("ok")
    assert rig.breaker.state == "closed"
    await rig.calls(*["down"] * 9)  # the failures before opening were forgotten
    assert rig.breaker.state == "closed"
    await rig.call("down")
    assert rig.breaker.state == "open"


async def test_a_failed_probe_reopens_for_another_timeout(rig: Rig) -> None:
    await rig.open_circuit()
    rig.clock.advance(RECOVERY)
    await rig.call("timeout")
    assert rig.breaker.state == "open"
    assert rig.breaker.remaining_open_seconds == RECOVERY
    rig.clock.advance(RECOVERY - 0.5)
    before = rig.inner.calls
    with pytest.raises(CircuitOpen):
        await rig.breaker.charge(charge_request())
    assert rig.inner.calls == before
    rig.clock.advance(0.5)
    assert rig.breaker.state == "half_open"
    await rig.call("ok")
    assert rig.breaker.state == "closed"


async def test_a_declined_probe_closes(rig: Rig) -> None:
    await rig.open_circuit()
    rig.clock.advance(RECOVERY)
    await rig.call("declined")
    assert rig.breaker.state == "closed"


async def test_a_cancelled_probe_is_a_failed_probe_and_reopens(rig: Rig) -> None:
    await rig.open_circuit()
    rig.clock.advance(RECOVERY)
    rig.inner.gate = asyncio.Event()
    before = rig.inner.calls
    probe = asyncio.create_task(rig.breaker.charge(charge_request()))
    await rig.started(before + 1)
    probe.cancel()
    await asyncio.wait([probe])
    assert probe.cancelled()
    assert rig.breaker.state == "open"
    assert rig.breaker.remaining_open_seconds == RECOVERY
    rig.inner.gate = None
    with pytest.raises(CircuitOpen):
        await rig.breaker.charge(charge_request())
    assert rig.inner.calls == before + 1
    rig.clock.advance(RECOVERY)
    await rig.call("ok")
    assert rig.breaker.state == "closed"


async def test_a_probe_cut_short_by_an_outer_timeout_reopens(rig: Rig) -> None:
    await rig.open_circuit()
    rig.clock.advance(RECOVERY)
    rig.inner.gate = asyncio.Event()  # never set: the provider hangs
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await rig.breaker.charge(charge_request())
    assert rig.breaker.state == "open"


@pytest.mark.parametrize("give_up", ["wait_for", "timeout"])
async def test_calls_cut_short_by_an_outer_timeout_count_as_failures(rig: Rig, give_up: str) -> None:
    rig.inner.gate = asyncio.Event()  # never set: the provider hangs
    for number in range(1, 11):
        with pytest.raises(TimeoutError):
            if give_up == "wait_for":
                await asyncio.wait_for(rig.breaker.charge(charge_request()), 0.01)
            else:
                async with asyncio.timeout(0.01):
                    await rig.breaker.refund(refund_request())
        assert rig.breaker.state == ("open" if number == 10 else "closed")
    with pytest.raises(CircuitOpen):
        await rig.breaker.charge(charge_request())
    assert rig.inner.calls == 10


async def test_a_timeout_error_from_the_call_counts_as_a_failure(rig: Rig) -> None:
    await rig.calls(*["timeout"] * 9)
    assert rig.breaker.state == "closed"
    await rig.call("timeout")
    assert rig.breaker.state == "open"


async def test_a_cancelled_call_is_one_failure_in_the_window(rig: Rig) -> None:
    rig.inner.gate = asyncio.Event()
    for _ in range(5):
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(rig.breaker.charge(charge_request()), 0.01)
    rig.inner.gate = None
    await rig.calls(*["ok"] * 5)
    assert rig.breaker.state == "closed"  # 5 of 10 failed: below the 0.6 rate


async def test_lookups_go_through_the_breaker(rig: Rig) -> None:
    assert await rig.breaker.find_charge(charge_request()) == ProviderResult("ref-1")
    rig.inner.outcome = "none"
    assert await rig.breaker.find_refund(refund_request()) is None
    rig.inner.outcome = "down"
    for number in range(8):  # with the two answers above: 8 failures in a window of 10
        assert rig.breaker.state == "closed"
        with pytest.raises(ProviderUnavailable) as raised:
            if number % 2:
                await rig.breaker.find_charge(charge_request())
            else:
                await rig.breaker.find_refund(refund_request())
        assert not isinstance(raised.value, CircuitOpen)
    assert rig.breaker.state == "open"
    before = rig.inner.calls
    for lookup in (rig.breaker.find_charge(charge_request()), rig.breaker.find_refund(refund_request())):
        with pytest.raises(CircuitOpen) as raised:
            await lookup
        assert raised.value.ambiguous is False and raised.value.retry_after == RECOVERY
    assert rig.inner.calls == before


async def test_lookups_and_charges_share_one_window(rig: Rig) -> None:
    await rig.calls(*["down"] * 5)
    rig.inner.outcome = "down"
    with pytest.raises(ProviderUnavailable):
        await rig.breaker.find_charge(charge_request())
    await rig.calls(*["ok"] * 4)
    assert rig.breaker.state == "open"  # 6 of the last 10, lookups included


async def test_a_lookup_can_be_the_probe(rig: Rig) -> None:
    await rig.open_circuit()
    rig.clock.advance(RECOVERY)
    rig.inner.outcome = "none"
    assert await rig.breaker.find_charge(charge_request()) is None
    assert rig.breaker.state == "closed"


async def test_calls_begun_before_opening_do_not_decide_the_probe(rig: Rig) -> None:
    straggler_gate = asyncio.Event()
    rig.inner.outcome, rig.inner.gate = "ok", straggler_gate
    straggler = asyncio.create_task(rig.breaker.charge(charge_request()))
    await rig.started(1)
    rig.inner.gate = None
    await rig.open_circuit()
    rig.clock.advance(RECOVERY)
    probe_gate = asyncio.Event()
    rig.inner.outcome, rig.inner.gate = "down", probe_gate
    probe = asyncio.create_task(rig.breaker.charge(charge_request()))
    await rig.started(12)
    straggler_gate.set()
    assert isinstance(await straggler, ProviderResult)
    assert rig.breaker.state == "half_open"  # the straggler's success did not close it...
    with pytest.raises(CircuitOpen):  # ...nor free the probe's slot
        await rig.breaker.charge(charge_request())
    probe_gate.set()
    with pytest.raises(ProviderUnavailable):
        await probe
    assert rig.breaker.state == "open"
    assert rig.breaker.remaining_open_seconds == RECOVERY

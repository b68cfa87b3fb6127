"""BreakerProvider with a shared circuit: the breakers of several processes open and close together."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from adapters.memory.circuit import InMemoryCircuit
from adapters.providers.breaker import SHARED_REFRESH, BreakerProvider
from core.providers import CircuitOpen, ProviderResult, ProviderUnavailable
from tests.fakes import FakeMonotonic
from tests.unit.test_breaker import RECOVERY, ScriptedProvider, charge_request

pytestmark = pytest.mark.timeout(30)


class Process:
    """One process's breaker (window 4, rate 1.0) on the clock and circuit every process shares."""

    def __init__(self, clock: FakeMonotonic, circuit: InMemoryCircuit) -> None:
        self.inner = ScriptedProvider()
        self.breaker = BreakerProvider(self.inner, window=4, failure_rate=1.0, recovery_timeout=RECOVERY, clock=clock,
                                       shared=circuit)

    async def call(self, outcome: str) -> None:
        self.inner.outcome = outcome
        with contextlib.suppress(ProviderUnavailable):
            await self.breaker.charge(charge_request())


def two_processes(circuit: type[InMemoryCircuit] = InMemoryCircuit) -> tuple[FakeMonotonic, Any, Process, Process]:
    """A clock, a circuit on it, and two processes sharing both."""
    clock = FakeMonotonic()
    shared = circuit(clock)
    return clock, shared, Process(clock, shared), Process(clock, shared)


async def test_one_breaker_opening_opens_the_others_and_its_probe_closes_them() -> None:
    clock, _, first, second = two_processes()
    for _ in range(4):
        await first.call("down")
    assert first.breaker.state == "open"
    clock.advance(10)
    with pytest.raises(CircuitOpen) as refused:  # the second never saw a failure, yet refuses
        await second.breaker.charge(charge_request())
    assert second.inner.calls == 0 and refused.value.retry_after == pytest.approx(RECOVERY - 10)
    assert second.breaker.state == "open" and second.breaker.remaining_open_seconds == pytest.approx(RECOVERY - 10)
    clock.advance(RECOVERY - 10)  # the recovery timeout is over for every process at once
    await first.call("down")  # the first's probe fails: the circuit opens again, for everyone
    with pytest.raises(CircuitOpen):
        await second.breaker.charge(charge_request())
    clock.advance(RECOVERY)
    await first.call("ok")  # its probe succeeds: closed everywhere
    assert first.breaker.state == "closed"
    assert await second.breaker.charge(charge_request()) == ProviderResult("ref-1")
    assert second.breaker.state == "closed"


async def test_a_breaker_opening_on_its_own_window_opens_the_shared_circuit_whoever_opened_it_before() -> None:
    clock, circuit, first, second = two_processes()
    await first.call("down")
    await second.call("down")
    assert await circuit.open_for() == 0  # neither window is full yet
    for _ in range(3):
        await second.call("down")
    assert second.breaker.state == "open" and await circuit.open_for() == RECOVERY
    clock.advance(SHARED_REFRESH)  # the first's last read of the shared circuit (closed) is no longer trusted
    with pytest.raises(CircuitOpen):
        await first.breaker.charge(charge_request())
    assert first.inner.calls == 1


class CountingCircuit(InMemoryCircuit):
    """An in-memory circuit that counts the reads (each a Redis round trip in production)."""

    reads = 0

    async def open_for(self) -> float:
        self.reads += 1
        await asyncio.sleep(0)  # a round trip: other calls run meanwhile
        return await super().open_for()


async def test_a_read_of_the_shared_circuit_is_trusted_for_the_refresh_then_read_again() -> None:
    clock, circuit, first, second = two_processes(CountingCircuit)
    for _ in range(3):
        await first.call("ok")
    assert circuit.reads == 1 and first.inner.calls == 3  # one read served three calls
    for _ in range(4):
        await second.call("down")  # the second's window opens it, and the shared circuit (one read: its first)
    assert circuit.reads == 2
    await first.call("ok")  # read closed a moment ago: the provider is still called
    assert first.inner.calls == 4 and circuit.reads == 2
    clock.advance(SHARED_REFRESH)
    with pytest.raises(CircuitOpen):  # read again: open
        await first.breaker.charge(charge_request())
    assert first.inner.calls == 4 and circuit.reads == 3
    clock.advance(SHARED_REFRESH / 2)
    with pytest.raises(CircuitOpen):  # an open read is trusted too, the refusal's wait counted from it
        await first.breaker.charge(charge_request())
    assert circuit.reads == 3
    clock.advance(RECOVERY)
    await second.call("ok")  # its probe (its own breaker is half open: no read) closes it, for everyone
    assert second.breaker.state == "closed" and circuit.reads == 3
    await second.call("ok")  # closed by itself just now: trusted without a read
    assert circuit.reads == 3
    assert await first.breaker.charge(charge_request()) == ProviderResult("ref-5")  # its read is stale: read
    assert circuit.reads == 4
    clock.advance(SHARED_REFRESH)
    await asyncio.gather(*(first.call("ok") for _ in range(3)))  # calls that meet a stale read share one read
    assert circuit.reads == 5 and first.inner.calls == 8

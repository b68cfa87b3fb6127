"""What a scenario is, how hard it is played (`Profile`), and one playing of it (`Run`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from tests.chaos.checks import Verdict, outbox_drained
from tests.chaos.harness import ChaosStack
from tests.chaos.load import Load


@attrs.frozen
class Profile:
    """How hard and how long: `full` for `make chaos`, `short` for the version in `make test`."""

    name: str
    warmup: float  # seconds of load before the fault
    after: float  # seconds of load after recovery
    transfer_clients: int
    pace: float  # seconds a client waits between its writes
    repeats: int  # restarts and kills per scenario
    outage: float  # seconds a dependency stays away
    redis_down: float  # seconds Redis stays away


FULL = Profile("full", warmup=3.0, after=3.0, transfer_clients=2, pace=0.05, repeats=2, outage=10.0, redis_down=3.0)
SHORT = Profile("short", warmup=1.5, after=1.5, transfer_clients=1, pace=0.1, repeats=1, outage=3.0, redis_down=1.0)


@attrs.define
class Run:
    """One scenario being played: its stack and load, when it last recovered, and what its injector noted."""

    stack: ChaosStack
    load: Load
    profile: Profile
    notes: dict[str, Any] = attrs.field(factory=dict)
    drained: asyncio.Task[Verdict] | None = None  # the outbox check, from the last recovery on

    def recovered(self) -> None:
        """The fault is over (the dependency is back): the outbox's 30 s start now (again, after a repeat)."""
        if self.drained is not None:
            self.drained.cancel()
        self.drained = asyncio.create_task(outbox_drained(self.stack, asyncio.get_running_loop().time()))


Step = Callable[[Run], Awaitable[None]]
Verify = Callable[[Run], Awaitable[list[Verdict]]]


async def _nothing(run: Run) -> list[Verdict]:
    return []


@attrs.frozen
class Scenario:
    name: str
    injected: str  # a template: {repeats}, {outage} and {redis_down} come from the profile
    asserted: str  # what it asserts besides the common post-conditions
    inject: Step
    verify: Verify = _nothing
    dropped_allowed: bool = False  # a killed API drops its connections
    api_env: dict[str, str] = attrs.field(factory=dict)
    mock_env: dict[str, str] = attrs.field(factory=dict)

    def describe(self, profile: Profile) -> str:
        """What it injects with `profile`."""
        return self.injected.format(repeats=profile.repeats, outage=profile.outage, redis_down=profile.redis_down)

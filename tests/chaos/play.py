"""One scenario from a fresh stack to its verdicts: load, inject, recover, then every post-condition."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from pathlib import Path

import attrs

from tests.chaos import checks
from tests.chaos.checks import Verdict
from tests.chaos.harness import chaos_stack
from tests.chaos.load import Load
from tests.chaos.model import Profile, Run, Scenario
from tests.e2e.isolated import PrivatePostgres
from tests.e2e.test_resilience import client_for


async def play(scenario: Scenario, profile: Profile, postgres: PrivatePostgres, logs: Path) -> list[Verdict]:
    """`scenario` on a fresh stack (a new database on `postgres`, the rest its own, logs under `logs`) under
    load: inject, recover, then every post-condition, the common ones first."""
    with chaos_stack(postgres, logs, api_env=scenario.api_env, mock_env=scenario.mock_env) as stack:
        async with await client_for(stack.iso) as client:
            load = await Load(client, transfer_clients=profile.transfer_clients, pace=profile.pace).prepare(stack)
            run = Run(stack, load, profile)
            load.start()
            try:
                await asyncio.sleep(profile.warmup)
                await scenario.inject(run)
                await asyncio.sleep(profile.after)
            except BaseException:
                if run.drained is not None:
                    run.drained.cancel()
                raise
            finally:
                await load.stop()
            assert run.drained is not None, f"{scenario.name} never said it had recovered"
            verdicts = [await run.drained, *checks.answers(load.observed, scenario.dropped_allowed)]
            for check in (checks.breaker_recovered(stack, load), checks.readable(load), checks.settled(stack, load),
                          checks.money(stack, load.observed), checks.ledger_clean(stack), checks.outbox_empty(stack),
                          checks.webhooks_delivered(stack, load)):
                verdicts.append(await _timed(check))
            return [*verdicts, checks.alive(stack), *await scenario.verify(run)]


async def _timed(check: Awaitable[Verdict]) -> Verdict:
    """The check's verdict, saying how long it waited for its condition when that was more than a few seconds."""
    started = time.monotonic()
    verdict = await check
    took = time.monotonic() - started
    return verdict if took < 5 else attrs.evolve(verdict, detail=f"{verdict.detail} (after {took:.0f} s)".strip())

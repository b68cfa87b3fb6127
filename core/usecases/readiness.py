"""Judge whether this process can serve: each dependency's probe, bounded in time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

#: A probe slower than this counts as failed: a load balancer's check must answer promptly.
CHECK_TIMEOUT = 1.0


async def check_readiness(probes: Mapping[str, Callable[[], Awaitable[object]]]) -> dict[str, str]:
    """Each probe's verdict by name, run together: "ok", or "failed: <error type>" if it raised or timed out."""
    verdicts = await asyncio.gather(*(_verdict(probe()) for probe in probes.values()))
    return dict(zip(probes, verdicts, strict=True))


async def _verdict(probe: Awaitable[object]) -> str:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT)
    except Exception as error:  # any failure is a verdict, not an error of the check
        return f"failed: {type(error).__name__}"
    return "ok"

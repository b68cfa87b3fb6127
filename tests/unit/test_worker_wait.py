"""The relay's wait returns on an event or a timeout and leaves no task behind."""

from __future__ import annotations

import asyncio

from workers.background import first


async def test_waiting_leaves_no_pending_tasks() -> None:
    wake, stop = asyncio.Event(), asyncio.Event()
    before = len(asyncio.all_tasks())
    for _ in range(50):
        await first(wake, stop, seconds=0.001)
    wake.set()
    await first(wake, stop, seconds=5)
    await asyncio.sleep(0)  # let the cancelled waiters finish cancelling
    assert len(asyncio.all_tasks()) == before

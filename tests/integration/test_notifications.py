"""LISTEN/NOTIFY and the relay's lead on a real PostgreSQL: one listener of several leads, each hears every
notification, and the lead passes on when the leader's connection ends."""

from __future__ import annotations

import asyncio

import asyncpg

from adapters.postgres.notifications import PgNotifications


async def test_one_listener_leads_each_hears_and_the_lead_passes_on_when_its_connection_ends(database_url: str) -> None:
    lead = (0x74657374, 7)  # not the relay's own: another test's worker may hold that one on a shared server
    first, second = (PgNotifications(database_url, "outbox_test", lead=lead) for _ in range(2))
    unled = PgNotifications(database_url, "outbox_test")
    try:
        for listener in (first, second, unled):
            await listener.listen()
        assert (first.leading, second.leading, unled.leading) == (True, False, True)
        await second.listen()  # tries again: still held
        assert not second.leading
        connection = await asyncpg.connect(database_url)
        try:
            await connection.execute("NOTIFY outbox_test")
        finally:
            await connection.close()
        async with asyncio.timeout(10):
            for listener in (first, second, unled):
                await listener.event.wait()  # a follower still hears: it just does not answer
        await first.aclose()
        assert not first.leading
        async with asyncio.timeout(10):  # the server releases the lock once it sees the connection end
            while not second.leading:
                await second.listen()
                await asyncio.sleep(0.05)
        await first.listen()
        assert not first.leading  # back, and following now
    finally:
        for listener in (first, second, unled):
            await listener.aclose()

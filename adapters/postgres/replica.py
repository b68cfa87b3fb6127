"""A streaming replica for the reads that may lag (lists, statements, the events feed, balance history): its lag,
sampled in the background, and the per-request routing that sends such reads to it while it is up and close enough.

Lag is how long ago the primary was at the position the replica has replayed: each sample notes the primary's WAL
position (`pg_current_wal_lsn()`) with the time, and the replica's replayed position is matched against those notes.
An idle primary writes nothing, so a replica that has replayed everything has no lag however old its last replayed
transaction is (`now() - pg_last_xact_replay_timestamp()` alone would grow without end), and a replica cut off from
its primary falls behind as soon as the primary writes, even though it has replayed all it received.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from loguru import logger
from prometheus_client.core import GaugeMetricFamily, Metric

from core.errors import ConcurrencyConflict, NotFound, Unavailable, UnknownEvent
from core.ports import UnitOfWork

T = TypeVar("T")

PRIMARY_POSITION = "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint"

# On a primary (a replica promoted, or the primary named twice) the replay functions answer NULL.
REPLICA_STATE = """SELECT pg_is_in_recovery() AS standby,
       coalesce((pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint, 0) AS replayed,
       coalesce((pg_last_wal_receive_lsn() - '0/0'::pg_lsn)::bigint, 0) AS received,
       coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8, 0) AS since_replayed"""


class PgReplica:
    """The replica's pool and its lag, sampled every `interval` seconds (at most once a second) by `watch`.

    `usable()` while the last sample found it up and at most `max_lag` seconds behind; a read that fails on it
    (`bypass`) or a sample that cannot reach it marks it unusable until a later sample finds it healthy again.
    """

    def __init__(self, pool: asyncpg.Pool, primary: asyncpg.Pool, *, max_lag: float, interval: float = 1.0,
                 timeout: float = 3.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.pool, self._primary, self.max_lag = pool, primary, max_lag
        self._interval, self._timeout, self._clock = max(1.0, interval), timeout, clock
        self.lag: float | None = None  # seconds behind at the last sample; None: down or not sampled yet
        self._seen: deque[tuple[float, int]] = deque()  # (monotonic time, the primary's WAL position then)
        self._keep = max(60.0, 4 * max_lag)  # how far back positions are remembered
        self._task: asyncio.Task[None] | None = None

    def usable(self) -> bool:
        return self.lag is not None and self.lag <= self.max_lag

    def bypass(self, error: BaseException) -> None:
        """A read failed on the replica: send reads to the primary until a sample finds it healthy again."""
        if self.lag is not None:
            logger.warning("read replica failed ({!r}): reads go to the primary until it answers again", error)
        self.lag = None

    async def sample(self) -> None:
        """Measure the lag once (waiting `timeout` at most for each of the primary and the replica)."""
        now = self._clock()
        try:
            primary: int | None = await asyncio.wait_for(self._primary.fetchval(PRIMARY_POSITION), self._timeout)
        except Exception:  # the primary's own troubles surface elsewhere; the lag falls back on the replica's view
            primary = None
        try:
            state = await asyncio.wait_for(self.pool.fetchrow(REPLICA_STATE), self._timeout)
        except Exception as error:
            if self.lag is not None:
                logger.warning("read replica unreachable ({!r}): reads go to the primary", error)
            self.lag = None
            return
        was_usable, self.lag = self.usable(), self._lag(now, primary, state)
        if was_usable != self.usable():
            logger.info("read replica {} ({:.1f}s behind, at most {}s)",
                        "in use" if self.usable() else "bypassed: too far behind", self.lag, self.max_lag)

    def _lag(self, now: float, primary: int | None, state: asyncpg.Record) -> float:
        if not state["standby"]:
            return 0.0
        replayed = int(state["replayed"])
        if primary is None:  # only the replica's view: behind what it received, for as long as its replay is old
            return 0.0 if replayed >= int(state["received"]) else float(state["since_replayed"])
        self._seen.append((now, primary))
        while self._seen and self._seen[0][0] < now - self._keep:
            self._seen.popleft()
        if replayed >= primary:
            return 0.0
        caught_up = [when for when, position in self._seen if position <= replayed]
        if caught_up:
            return now - max(caught_up)
        # Behind every position remembered: at least as old as the oldest one (on the first sample, that is now,
        # so the replica's own estimate is taken).
        return max(now - self._seen[0][0], float(state["since_replayed"]))

    async def watch(self) -> None:
        while True:
            await self.sample()
            await asyncio.sleep(self._interval)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.watch(), name="replica-lag")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self.pool.close()

    def gauges(self) -> list[Metric]:
        """`database_replica_lag_seconds` (no sample while it is down) and `database_replica_in_use` (0 or 1)."""
        lag = GaugeMetricFamily("database_replica_lag_seconds",
                                "How far the read replica is behind the primary, as last sampled (none while down).")
        if self.lag is not None:
            lag.add_metric([], self.lag)
        used = GaugeMetricFamily("database_replica_in_use",
                                 "1 while reads that may lag go to the replica; 0 while it is down or lagging more "
                                 "than PAYMENTS_DATABASE_READ_MAX_LAG and they go to the primary.")
        used.add_metric([], 1.0 if self.usable() else 0.0)
        return [lag, used]


class PgReads:
    """The `Reads` of one request: its reads run on the replica while that is usable, else on the primary.

    Sticky in one direction only: once a read has gone to the primary (the replica failed, or was bypassed when the
    request began), the request's later reads go there too. The primary holds everything the replica does, so a
    statement read a page at a time never misses an entry between two pages; the other way round it could.
    A `NotFound` or `UnknownEvent` from the replica is asked of the primary again: what was just written may not
    have reached the replica yet (an account opened a moment ago, the events feed's `after` read on the primary);
    so is a `ConcurrencyConflict`, which there means a query cancelled for conflicting with the replay.
    """

    def __init__(self, primary: Callable[[], UnitOfWork], replica: Callable[[], UnitOfWork] | None,
                 source: PgReplica | None) -> None:
        self._primary, self._source = primary, source
        self._replica = replica if source is not None and source.usable() else None

    async def run(self, use_case: Callable[[UnitOfWork], Awaitable[T]]) -> T:
        if self._replica is not None:
            try:
                async with self._replica() as uow:
                    return await use_case(uow)
            except Unavailable as error:
                if self._source is not None:
                    self._source.bypass(error)
                self._replica = None
            except (NotFound, UnknownEvent, ConcurrencyConflict):  # the last: a query cancelled by the replay
                self._replica = None
        async with self._primary() as uow:
            return await use_case(uow)

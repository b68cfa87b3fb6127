"""The worker process: Dramatiq consumers, the outbox relay (LISTEN/NOTIFY + poll) and housekeeping."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from datetime import UTC, datetime, timedelta

import asyncpg
import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import AsyncIO
from loguru import logger

from adapters.dramatiq.broker import DramatiqTaskQueue, make_broker
from adapters.dramatiq.observe import serve_worker_metrics
from adapters.postgres.outbox_feed import PgLease, PgOutboxFeed
from adapters.postgres.pool import create_pool
from adapters.postgres.refunds import PgInFlight
from adapters.telemetry import configure_tracing
from app.settings import Settings
from core.errors import CoreError
from core.usecases.outbox import housekeep, relay_outbox, requeue_stuck
from workers import runtime

POLL_INTERVAL = 1.0  # a missed notification costs at most this much delay
OUTBOX_RETENTION = timedelta(days=7)  # published events are kept a week for inspection and replay


async def relay_forever(pool: asyncpg.Pool, queue: DramatiqTaskQueue, database_url: str, stop: asyncio.Event) -> None:
    """Publish outbox rows as they commit: woken by NOTIFY, polling as a safety net."""
    feed = PgOutboxFeed(pool)
    wake = asyncio.Event()
    listener: asyncpg.Connection | None = None
    while not stop.is_set():
        if listener is None or listener.is_closed():
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncio.TimeoutError):
                listener = await asyncpg.connect(database_url, timeout=5)
                await listener.add_listener("outbox", lambda *_: wake.set())
        wake.clear()  # before draining: a notification that arrives meanwhile wakes the next round at once
        try:
            while not stop.is_set() and await relay_outbox(outbox=feed, queue=queue) > 0:
                pass
        except CoreError as error:
            logger.warning("outbox relay paused: {}", error.detail)
        await _first(wake, stop, seconds=POLL_INTERVAL)
    if listener is not None:
        with contextlib.suppress(Exception):
            await listener.close()


async def _first(*events: asyncio.Event, seconds: float) -> None:
    """Return when any event is set or `timeout` passes; leaves no waiter behind."""
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()


async def housekeeping_forever(
    pool: asyncpg.Pool, queue: DramatiqTaskQueue, settings: Settings, stop: asyncio.Event, owner: str
) -> None:
    """One worker at a time (a lease with a fencing token): re-enqueue stuck payments and refunds,
    reap expired idempotency records and week-old published outbox rows."""
    lease, in_flight = PgLease(pool), PgInFlight(pool)
    interval = settings.worker.housekeeping_interval
    while not stop.is_set():
        try:
            now = datetime.now(UTC)
            requeued = await requeue_stuck(lease=lease, owner=owner, ttl_seconds=interval * 2, in_flight=in_flight,
                                           queue=queue, now=now,
                                           stuck_after=timedelta(seconds=settings.payment.stuck_after))
            if requeued:
                logger.bind(requeued=requeued).warning("housekeeping re-enqueued {} stuck payment(s)/refund(s)",
                                                       requeued)
            done = await housekeep(lease=lease, owner=owner, ttl_seconds=interval * 2,
                                   now=now, outbox_retention=OUTBOX_RETENTION)
            if done and any(done.values()):
                logger.bind(**done).info("housekeeping deleted expired idempotency keys and old outbox rows")
        except CoreError as error:
            logger.warning("housekeeping skipped: {}", error.detail)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


class _CloseRuntime(dramatiq.Middleware):
    """Closes the actors' connections on their event loop, after the last message and before the loop stops.

    Added after the AsyncIO middleware: `after_*` hooks run in reverse order, so this one runs once
    the worker threads have finished their messages and before AsyncIO stops the loop.
    """

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        thread = get_event_loop_thread()
        if thread is not None:
            with contextlib.suppress(Exception):
                thread.run_coroutine(runtime.close())


async def run(settings: Settings, database_url: str, redis_url: str, stop: asyncio.Event | None = None) -> None:
    """The worker until SIGTERM/SIGINT (or until `stop` is set, for callers that run it in-process)."""
    configure_tracing("payments-worker")
    serve_worker_metrics(settings.worker.metrics_host, settings.worker.metrics_port)
    broker = make_broker(redis_url)
    broker.add_middleware(_CloseRuntime(), after=AsyncIO)
    runtime.configure(settings, database_url, redis_url, broker)
    import workers.actors
    import workers.payments
    import workers.webhooks

    # worker_timeout: how long an idle consumer waits between fetches (Dramatiq's default backs off to 1 s,
    # which adds up to a second between the relay's enqueue and the worker; measured in bench/payments.py)
    worker = dramatiq.Worker(broker, worker_threads=settings.worker.concurrency, worker_timeout=100)
    worker.start()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    pool = await create_pool(database_url, min_size=0, max_size=4, command_timeout=settings.database.statement_timeout)
    owner = f"{socket.gethostname()}:{os.getpid()}"
    logger.bind(process="worker").info("worker started")
    try:
        queue = DramatiqTaskQueue(broker)
        await asyncio.gather(relay_forever(pool, queue, database_url, stop),
                             housekeeping_forever(pool, queue, settings, stop, owner),
                             workers.webhooks.schedule_forever(pool, queue, settings.webhooks.policy(),
                                                               settings.webhooks.poll_interval, stop))
    finally:
        logger.info("worker stopping: finishing current messages")
        await asyncio.to_thread(worker.stop, int(settings.server.shutdown_timeout * 1000))
        broker.close()
        await pool.close()
        logger.info("worker stopped")

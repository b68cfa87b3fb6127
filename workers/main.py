"""The worker process: Dramatiq consumers and, on the same event loop, the outbox relay, the webhook
scheduler, the hold expiry sweep and housekeeping; all on one `Services` from the composition root."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from typing import Any

import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import AsyncIO
from loguru import logger

from adapters.malloc import tune_collector
from adapters.telemetry import configure_tracing
from app.bootstrap import broker as make_broker
from app.settings import Settings
from workers import events, payments, webhooks
from workers.background import housekeeping_forever, relay_forever, schedule_forever, sweep_holds_forever
from workers.context import WorkerContext
from workers.health import WorkerReadiness, serve_health


def use_uvloop() -> None:
    """Make every event loop this process creates from now on a uvloop loop: the main one, and the actors'
    loop that Dramatiq's AsyncIO middleware creates with `asyncio.new_event_loop()` when the worker starts.

    The actors' loop carries the payments, the deliveries and the background loops; on the default loop about a
    third of its samples were the loop's own bookkeeping and its socket writes (docs/benchmarks.md, "uvloop in
    the worker"). The default loop stays where uvloop is not installed (it is not built for Windows)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is installed wherever sanic is, except on Windows
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def declare_actors(broker: dramatiq.Broker, context: WorkerContext) -> list[dramatiq.Actor[Any, Any]]:
    """Every actor of the worker, on `broker`, sharing `context`."""
    return [*events.declare(broker, context), *payments.declare(broker, context), *webhooks.declare(broker, context)]


class _CloseServices(dramatiq.Middleware):
    """Closes the services on their event loop, after the last message and before the loop stops.

    Added after the AsyncIO middleware: `after_*` hooks run in reverse order, so this one runs once
    the worker threads have finished their messages and before AsyncIO stops the loop.
    """

    def __init__(self, context: WorkerContext) -> None:
        self._context = context

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        thread = get_event_loop_thread()
        if thread is not None:
            with contextlib.suppress(Exception):
                thread.run_coroutine(self._context.aclose())


async def _background(context: WorkerContext, stop: asyncio.Event, owner: str) -> None:
    ready = await context.get()
    services = ready.services
    tune_collector()  # once the services are built (adapters/malloc.py: full collections took 100-250 ms)
    async with asyncio.TaskGroup() as loops:  # one loop raising cancels the others
        loops.create_task(relay_forever(services, ready.webhook_policy, stop))
        loops.create_task(housekeeping_forever(services, stop, owner))
        loops.create_task(schedule_forever(services, ready.webhook_policy, stop))
        loops.create_task(sweep_holds_forever(services, stop))


def _on_signal(stop: asyncio.Event, signum: int) -> None:
    """The first SIGINT/SIGTERM stops the worker gracefully; a second one while it drains ends it at once (the
    messages it held are not acknowledged, so the broker gives them to another worker)."""
    if not stop.is_set():
        stop.set()
        return
    logger.warning("second {}: stopping at once, abandoning the messages in progress", signal.Signals(signum).name)
    sys.stderr.flush()
    os._exit(128 + signum)


async def run(settings: Settings, database_url: str, redis_url: str, stop: asyncio.Event | None = None) -> None:
    """The worker until SIGTERM/SIGINT (or until `stop` is set, for callers that run it in-process)."""
    configure_tracing("payments-worker")
    broker = make_broker(settings, redis_url)
    context = WorkerContext(settings=settings, database_url=database_url, redis_url=redis_url, broker=broker)
    declare_actors(broker, context)
    broker.add_middleware(_CloseServices(context), after=AsyncIO)
    # worker_timeout: how long an idle consumer waits between fetches (Dramatiq's default backs off to 1 s,
    # which adds up to a second between the relay's enqueue and the worker; measured in bench/payments.py)
    worker = dramatiq.Worker(broker, worker_threads=settings.worker.concurrency, worker_timeout=100)
    worker.start()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, stop, sig)
    thread = get_event_loop_thread()
    assert thread is not None, "the AsyncIO middleware starts the actors' event loop with the worker"
    halt = asyncio.Event()  # set on the actors' loop, where the background loops wait on it
    background = asyncio.run_coroutine_threadsafe(
        _background(context, halt, f"{socket.gethostname()}:{os.getpid()}"), thread.loop)
    readiness = WorkerReadiness(context, background)
    stop_health = serve_health(settings.worker.metrics_host, settings.worker.metrics_port, thread.loop, readiness)
    logger.bind(process="worker", broker=type(broker).__name__).info(
        "worker started ({} event loop)", type(thread.loop).__module__.partition(".")[0])
    loops = asyncio.wrap_future(background)
    try:
        await first_done(stop, loops)
    finally:
        logger.info("worker stopping: finishing current messages (a second signal stops at once)")
        with contextlib.suppress(RuntimeError):  # the actors' loop has already closed
            thread.loop.call_soon_threadsafe(halt.set)
        try:
            await loops
        except Exception as error:
            logger.opt(exception=error).error("the worker's relay, scheduler, hold sweep or housekeeping failed")
        await asyncio.to_thread(worker.stop, int(settings.server.shutdown_timeout * 1000))
        broker.close()
        stop_health()
        logger.info("worker stopped")


async def first_done(stop: asyncio.Event, background: asyncio.Future[None]) -> None:
    """Until `stop` is set, or the background loops end (they end only by raising: re-raised here)."""
    waiter: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([waiter, background], return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if background.done():
        background.result()

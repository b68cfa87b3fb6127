"""The worker's operations port: `/metrics`, `/health/live` and `/health/ready` on PAYMENTS_WORKER_METRICS_PORT.

They are answered from threads of their own, not from the event loop the actors and loops run on, so that a
stuck loop is reported (503) rather than leaving the orchestrator's probe without an answer.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from loguru import logger
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from adapters.dramatiq.observe import WORKER_REGISTRY
from core.usecases.readiness import CHECK_TIMEOUT, check_readiness
from workers.context import WorkerContext

LIVE_TIMEOUT = 2.0  # an event loop that cannot run a no-op within this is stuck: the process should be restarted
READY_TIMEOUT = CHECK_TIMEOUT + 2.0  # the probes are bounded by CHECK_TIMEOUT each, and run together

Readiness = Callable[[], Coroutine[Any, Any, dict[str, str]]]


class WorkerReadiness:
    """What /health/ready checks, on the actors' event loop: the services' probes (PostgreSQL, Redis,
    migrations), the broker's connection, and that the relay, scheduler, hold sweep and housekeeping loops still run."""

    def __init__(self, context: WorkerContext, loops: Future[None]) -> None:
        self._context, self._loops = context, loops

    async def __call__(self) -> dict[str, str]:
        try:
            services = (await self._context.get()).services
        except Exception as error:  # the composition root itself failed: nothing else can be judged
            return {"services": f"failed: {type(error).__name__}"}
        probes: dict[str, Callable[[], Awaitable[object]]] = dict(services.readiness_probes())
        probes["broker"] = services.broker_probe  # always named here, even when it is the Redis already checked
        probes["loops"] = self._loops_running
        return await check_readiness(probes)

    async def _loops_running(self) -> None:
        if self._loops.done():
            raise RuntimeError("the relay, scheduler, hold sweep and housekeeping loops have stopped")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], loop: asyncio.AbstractEventLoop, readiness: Readiness) -> None:
        super().__init__(address, _Handler)
        self.loop, self.readiness = loop, readiness


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, generate_latest(WORKER_REGISTRY), CONTENT_TYPE_LATEST)
        elif path == "/health/live":
            alive = self._on_loop(lambda: asyncio.sleep(0), LIVE_TIMEOUT) is not None
            self._json(200 if alive else 503, {"status": "live" if alive else "event loop not answering"})
        elif path == "/health/ready":
            checks = self._on_loop(self.server.readiness, READY_TIMEOUT) or {"event_loop": "failed: TimeoutError"}
            healthy = all(verdict == "ok" for verdict in checks.values())
            self._json(200 if healthy else 503, {"status": "ready" if healthy else "unavailable", "checks": checks})
        else:
            self._json(404, {"status": "not found", "paths": ["/metrics", "/health/live", "/health/ready"]})

    def _on_loop(self, make: Callable[[], Coroutine[Any, Any, Any]], timeout: float) -> Any:
        """What `make()` returns when run on the actors' loop (True for None), or None if the loop does not
        run it within `timeout` (stuck, or closed)."""
        try:
            result = asyncio.run_coroutine_threadsafe(make(), self.server.loop).result(timeout)
        except (FutureTimeout, RuntimeError):
            return None
        return True if result is None else result

    def _json(self, status: int, body: dict[str, Any]) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # probes every few seconds would drown the worker's log


def serve_health(host: str, port: int, loop: asyncio.AbstractEventLoop, readiness: Readiness) -> Callable[[], None]:
    """Serve the operations port from a daemon thread; what stops it. Port 0, or one that cannot be bound
    (logged), serves nothing."""
    if port == 0:
        return lambda: None
    try:
        server = _Server((host, port), loop, readiness)
    except OSError as error:
        logger.warning("worker metrics and health not served: cannot listen on {}:{} ({}); set "
                       "PAYMENTS_WORKER_METRICS_PORT to a free port, or 0 to turn them off", host, port, error)
        return lambda: None
    threading.Thread(target=server.serve_forever, name="worker-health", daemon=True).start()
    logger.info("worker metrics and health on http://{}:{}/metrics, /health/live, /health/ready", host, port)

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return stop


"""The stack a chaos scenario breaks: a private PostgreSQL and Redis on ports of their own, the API, a worker and
the mock providers as real processes (tests/e2e/isolated.py), a webhook receiver that can go away and come back,
and one method per fault."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import asyncpg
import attrs
import httpx
import psycopg

from tests.e2e.conftest import Process, free_port, wait_http
from tests.e2e.helpers import metric_samples
from tests.e2e.isolated import Isolated, PrivatePostgres, isolated_stack
from tests.receiver import Receiver

#: The worker's settings on top of tests/e2e/conftest.py's FAST_WORKER: webhook deliveries retry quickly for
#: about a minute (the default gives up after 3 attempts), so that a receiver away for a while is caught up.
CHAOS_WORKER = {
    "PAYMENTS_WEBHOOKS_MAX_ATTEMPTS": "60",
    "PAYMENTS_WEBHOOKS_MIN_BACKOFF": "200ms",
    "PAYMENTS_WEBHOOKS_MAX_BACKOFF": "1s",
}
HOOK_PATH = "/chaos"


class SwitchableReceiver(Receiver):
    """The tests' webhook receiver, which can go away (its port refuses connections) and come back on that port."""

    @property
    def up_now(self) -> bool:
        return self._thread.is_alive()

    def down(self) -> None:
        self.stop()

    def up(self) -> None:
        host, port = self._server.server_address[:2]
        server = ThreadingHTTPServer((str(host), int(port)), self._server.RequestHandlerClass)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()


def ensure_running(postgres: PrivatePostgres) -> None:
    """Start the server again if a scenario left it down (a failed scenario must not fail the next ones)."""
    try:
        psycopg.connect(postgres.url, connect_timeout=3).close()
    except psycopg.OperationalError:
        postgres.resume()


@attrs.define
class ChaosStack:
    """The processes and servers of one scenario, and the faults to inject into them."""

    postgres: PrivatePostgres
    iso: Isolated
    receiver: SwitchableReceiver

    @property
    def processes(self) -> list[Process]:
        return [self.iso.api, self.iso.mock, *self.iso.workers]

    async def restart_postgres(self) -> None:
        await asyncio.to_thread(self.postgres.restart)

    async def postgres_outage(self, seconds: float) -> None:
        """PostgreSQL crashes (`pg_ctl stop -m immediate`) and stays down `seconds`; it recovers from its WAL."""
        await asyncio.to_thread(self.postgres.halt, "immediate")
        try:
            await asyncio.sleep(seconds)
        finally:
            await asyncio.to_thread(self.postgres.resume)

    async def kill(self, process: Process, seconds: float, ready_url: str | None = None) -> None:
        """SIGKILL `process`, and after `seconds` start it again as before (what a supervisor does)."""
        process.stop(signal.SIGKILL)
        try:
            await asyncio.sleep(seconds)
        finally:
            process.start()
        if ready_url is not None:
            await asyncio.to_thread(wait_http, ready_url, process, 60)

    async def provider_failure_rate(self, rate: float) -> None:
        """Every provider call of the mock fails (1.0) or none does (0.0)."""
        async with httpx.AsyncClient(base_url=self.iso.mock_url, timeout=10) as http:
            answer = await http.put("/_mock/config", json={"failure_rate": rate})
        assert answer.status_code == 200, answer.text

    async def metrics(self, name: str) -> list[tuple[dict[str, str], float]]:
        """The API's samples of metric `name`."""
        async with httpx.AsyncClient(base_url=self.iso.base_url, timeout=10) as http:
            text = (await http.get("/metrics")).text
        return metric_samples(text, name)

    async def breaker_states(self) -> dict[str, float]:
        """Each provider's circuit breaker as the worker last reported it: 0 closed, 1 half-open, 2 open."""
        return {labels["provider"]: value for labels, value in await self.metrics("circuit_breaker_state")}

    @contextlib.asynccontextmanager
    async def database(self) -> AsyncIterator[asyncpg.Connection]:
        """A direct connection to the stack's database, for what the checks read behind the API's back."""
        connection = await asyncpg.connect(self.iso.database_url, timeout=10)
        try:
            yield connection
        finally:
            await connection.close()

    @contextlib.asynccontextmanager
    async def readiness_watch(self) -> AsyncIterator[list[int]]:
        """`GET /health/ready` every 50 ms while the block runs: the statuses seen (-1: no connection), so a
        scenario can show its fault was felt (503) and healed (200)."""
        seen: list[int] = []
        stop = asyncio.Event()

        async def watch() -> None:
            async with httpx.AsyncClient(base_url=self.iso.base_url, timeout=5) as http:
                while not stop.is_set():
                    try:
                        seen.append((await http.get("/health/ready")).status_code)
                    except httpx.HTTPError:
                        seen.append(-1)
                    await asyncio.sleep(0.05)

        task = asyncio.create_task(watch())
        try:
            yield seen
        finally:
            stop.set()
            await task


@contextlib.contextmanager
def chaos_stack(
    postgres: PrivatePostgres, logs: Path, *, api_env: dict[str, str] | None = None,
    worker_env: dict[str, str] | None = None, mock_env: dict[str, str] | None = None,
) -> Iterator[ChaosStack]:
    """A fresh database on `postgres`, a private Redis on its own port, the stack and a receiver; all of it
    stopped on the way out, whatever happened (the server `postgres` stays up for the next scenario)."""
    ensure_running(postgres)
    receiver = SwitchableReceiver()
    receiver.start()
    try:
        with isolated_stack(postgres.url, logs, workers=1, redis_port=free_port(), mock_env=mock_env,
                            worker_env={**CHAOS_WORKER, **(worker_env or {})}, api_env=api_env) as iso:
            yield ChaosStack(postgres, iso, receiver)
    finally:
        if receiver.up_now:
            receiver.stop()

"""The whole stack as processes: `payments serve` on a free port, talking to the session's database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import attrs
import httpx
import pytest

from app.bootstrap import Services
from payments.client import AsyncClient
from tests.conftest import SECRETS_KEYS, new_api_key


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@attrs.define
class Process:
    """A `payments` subcommand running in the background, with its output in a file."""

    args: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "payments", *self.args],
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 40) -> int | None:
        if self.popen is None or self.popen.poll() is not None:
            return self.popen.returncode if self.popen else None
        self.popen.send_signal(sig)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def stack_env(database_url: str, redis_url: str, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMENTS_")}
    env.update(
        {
            "PAYMENTS_DATABASE_URL": database_url,
            "PAYMENTS_REDIS_URL": redis_url,
            "PAYMENTS_SERVER_PORT": str(port),
            "PAYMENTS_OBSERVABILITY_LOG_LEVEL": "warning",
            "PAYMENTS_DATABASE_POOL_MAX": "30",
            # several workers run at once: none takes the default metrics port (a test that wants it sets one)
            "PAYMENTS_WORKER_METRICS_PORT": "0",
            # test webhook receivers listen on 127.0.0.1; the SSRF tests turn the guard back on
            "PAYMENTS_WEBHOOKS_ALLOW_PRIVATE_URLS": "true",
            "PAYMENTS_SECRETS_KEYS": SECRETS_KEYS,
        }
    )
    env.update(extra)
    return env


def wait_ready(base_url: str, process: Process, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.popen is not None
        if process.popen.poll() is not None:
            raise RuntimeError(f"server exited early:\n{process.output()[-4000:]}")
        try:
            if httpx.get(f"{base_url}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server not ready in {timeout}s:\n{process.output()[-4000:]}")


@attrs.define
class Stack:
    base_url: str
    process: Process
    services: Services


def start_api(database_url: str, redis_url: str, log: Path, **extra: str) -> tuple[str, Process]:
    port = free_port()
    process = Process(["serve"], stack_env(database_url, redis_url, port, **extra), log).start()
    base_url = f"http://127.0.0.1:{port}"
    wait_ready(base_url, process)
    return base_url, process


@pytest.fixture(scope="session")
def api_process(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Process]]:
    log = tmp_path_factory.mktemp("api") / "api.log"
    base_url, process = start_api(database_url, redis_url, log)
    yield base_url, process
    process.stop()


@pytest.fixture(scope="session")
def stack(api_process: tuple[str, Process], services: Services) -> Stack:
    return Stack(api_process[0], api_process[1], services)


@pytest.fixture
async def api_key(services: Services) -> str:
    """A read/write key of a brand-new tenant."""
    return await new_api_key(services)


@pytest.fixture
async def client(stack: Stack, api_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client authenticated as a fresh tenant."""
    limits = httpx.Limits(max_connections=300, max_keepalive_connections=300)
    async with httpx.AsyncClient(
        base_url=stack.base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30, limits=limits
    ) as http:
        yield http


@pytest.fixture
async def api(stack: Stack, api_key: str) -> AsyncIterator[AsyncClient]:
    """The project's own client (`payments.client`), authenticated as the same fresh tenant as `client`, on a
    connection pool as large as `client`'s."""
    limits = httpx.Limits(max_connections=300, max_keepalive_connections=300)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        yield AsyncClient(stack.base_url, api_key, http=http)


def _server_errors(base_url: str) -> float:
    """5xx responses the API process has answered so far, from its /metrics."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{base_url}/metrics", timeout=10) as response:  # no TLS setup: much faster than httpx
        text = response.read().decode()
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "http_requests_total" and sample.labels.get("status", "").startswith("5"))


@pytest.fixture
def no_server_errors(stack: Stack, request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test if the API process answered any 5xx while it ran (tests marked xfail are exempt)."""
    before = _server_errors(stack.base_url)
    yield
    if request.node.get_closest_marker("xfail") is None:
        after = _server_errors(stack.base_url)
        assert after == before, f"the API answered {after - before:g} 5xx response(s); see {stack.process.log}"


#: Fast schedules so retries, stuck work and breakers play out in seconds (defaults are 1 s .. 30 s).
FAST_WORKER = {
    "PAYMENTS_PAYMENT_MIN_BACKOFF": "100ms",
    "PAYMENTS_PAYMENT_MAX_BACKOFF": "400ms",
    "PAYMENTS_PAYMENT_PROVIDER_TIMEOUT": "1s",
    "PAYMENTS_PAYMENT_LOCK_TTL": "5s",
    "PAYMENTS_PAYMENT_STUCK_AFTER": "3s",
    "PAYMENTS_PAYMENT_BREAKER_RECOVERY": "2s",
    "PAYMENTS_WORKER_HOUSEKEEPING_INTERVAL": "1s",
    "PAYMENTS_WORKER_HOLD_SWEEP_INTERVAL": "200ms",
    "PAYMENTS_WORKER_CONCURRENCY": "4",  # each worker then holds at most 6 + 5 connections
    "PAYMENTS_WEBHOOKS_MIN_BACKOFF": "200ms",
    "PAYMENTS_WEBHOOKS_MAX_BACKOFF": "400ms",
    "PAYMENTS_WEBHOOKS_MAX_ATTEMPTS": "3",
    "PAYMENTS_WEBHOOKS_TIMEOUT": "1s",
    "PAYMENTS_WEBHOOKS_POLL_INTERVAL": "100ms",
    "PAYMENTS_WEBHOOKS_CONCURRENCY": "2",  # of the 4 threads: slow receivers leave 2 to payments
    "PAYMENTS_OBSERVABILITY_LOG_LEVEL": "info",
}


def wait_http(url: str, process: Process, timeout: float = 30) -> None:
    """Wait until `url` answers 200 (the process must stay up meanwhile)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.popen is not None
        if process.popen.poll() is not None:
            raise RuntimeError(f"{process.args} exited early:\n{process.output()[-4000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} not ready in {timeout}s:\n{process.output()[-4000:]}")


def start_mock(log: Path, **extra: str) -> tuple[int, Process]:
    """`payments mock-providers` on a free port."""
    port = free_port()
    env = stack_env("", "", 8080, PAYMENTS_MOCK_PORT=str(port), **extra)
    process = Process(["mock-providers"], env, log).start()
    wait_http(f"http://127.0.0.1:{port}/health", process)
    return port, process


def start_worker(database_url: str, redis_url: str, mock_port: int, log: Path, **extra: str) -> Process:
    env = stack_env(database_url, redis_url, 8080, PAYMENTS_MOCK_PORT=str(mock_port), **{**FAST_WORKER, **extra})
    return Process(["worker"], env, log).start()


@attrs.define
class Payments:
    """The whole stack for external payments: API, worker and mock providers."""

    base_url: str
    mock_url: str
    worker: Process
    mock: Process
    services: Services


@pytest.fixture(scope="session")
def payments_stack(
    stack: Stack, database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Payments]:
    logs = tmp_path_factory.mktemp("payments")
    port, mock = start_mock(logs / "mock.log")
    # The session's tests run deliberate timeouts and transient failures one after another; a breaker tripped
    # by one test must not fail the next test's payments. Only a long run of failures opens it here (the
    # breaker's own behaviour is tested on isolated stacks and in tests/unit/test_breaker.py).
    worker = start_worker(database_url, redis_url, port, logs / "worker.log",
                          PAYMENTS_PAYMENT_BREAKER_WINDOW="30", PAYMENTS_PAYMENT_BREAKER_FAILURE_RATE="1.0")
    yield Payments(stack.base_url, f"http://127.0.0.1:{port}", worker, mock, stack.services)
    worker.stop()
    mock.stop()

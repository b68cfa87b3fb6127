"""A request whose client goes away before the answer, or that runs past Sanic's response timeout, is no 500.

Sanic cancels the handler of a request whose connection is lost: a client that gave up waiting (a load balancer's
or `wait_ready`'s one-second timeout), or one whose connection sat in the listen backlog while the process was
still starting (its socket listens before its services are built) and was abandoned there. Such a request used to
end in Sanic's default handler as an unlogged 500, counted in /metrics as `status="500"`: the /health/ready 500s
seen while `serve` processes started. It is counted as 499 (client closed request), which nobody receives.

The API process here has a Redis that accepts connections and never answers, so /health/ready waits out its Redis
probe's timeout (a second) every time: a client giving up after a fraction of that always leaves while the handler
runs, however loaded the machine.

Sanic's own answer to a handler that runs past its RESPONSE_TIMEOUT (60 s unless SANIC_RESPONSE_TIMEOUT says
otherwise) is a 503 `ServiceUnavailable`, which the error handler used to turn into an `internal_error` 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Process, free_port, stack_env
from tests.e2e.helpers import assert_problem, metric_samples, wait_live

#: How long the client waits for /health/ready before it closes its connection: well under `CHECK_TIMEOUT`.
PATIENCE = 0.3


@pytest.fixture(scope="module")
def silent_redis() -> Iterator[str]:
    """A Redis URL whose server takes connections (the kernel's backlog does) and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(256)
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"


@contextlib.asynccontextmanager
async def started(database_url: str, redis_url: str, log: Path, **extra: str) -> AsyncIterator[tuple[str, Process]]:
    port = free_port()
    process = Process(["serve"], stack_env(database_url, redis_url, port, **extra), log).start()
    base_url = f"http://127.0.0.1:{port}"
    try:
        await wait_live(base_url, process, timeout=60)
        yield base_url, process
    finally:
        process.stop()


@pytest.fixture(scope="module")
async def stalled_api(database_url: str, silent_redis: str,
                      tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[str, Process]]:
    """An API process that is live but whose readiness check takes a second each time."""
    async with started(database_url, silent_redis, tmp_path_factory.mktemp("stalled") / "api.log") as api:
        yield api


@pytest.fixture(scope="module")
async def impatient_api(database_url: str, silent_redis: str,
                        tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[str, Process]]:
    """The same, with a response timeout (Sanic's) shorter than its readiness check."""
    async with started(database_url, silent_redis, tmp_path_factory.mktemp("impatient") / "api.log",
                       SANIC_RESPONSE_TIMEOUT=str(PATIENCE)) as api:
        yield api


async def ready_statuses(http: httpx.AsyncClient) -> dict[str, float]:
    """How many /health/ready requests the process has counted, by status."""
    samples = metric_samples((await http.get("/metrics")).text, "http_requests_total")
    return {labels["status"]: value for labels, value in samples if labels["route"] == "/health/ready"}


async def test_a_request_its_client_abandoned_is_counted_as_499_not_as_a_500(
    stalled_api: tuple[str, Process],
) -> None:
    base_url, process = stalled_api
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        assert await ready_statuses(http) == {}
        # Abandon readiness checks until the process has counted one (on a very loaded machine a connection may be
        # lost before its request was even read: such a request is not counted at all, and another is sent).
        async with asyncio.timeout(60):
            while not await ready_statuses(http):
                with pytest.raises(httpx.ReadTimeout):
                    await http.get("/health/ready", timeout=PATIENCE)
        statuses = await ready_statuses(http)
    assert set(statuses) == {"499"}, f"abandoned /health/ready requests were counted as {statuses}; see {process.log}"
    assert '"level": "error"' not in process.output(), process.output()[-4000:]


async def test_a_request_past_the_response_timeout_is_a_503_not_a_500(impatient_api: tuple[str, Process]) -> None:
    base_url, process = impatient_api
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        response = await http.get("/health/ready")
    assert_problem(response, "service_unavailable", 503)
    assert response.headers["Retry-After"] == "1", response.headers
    assert '"level": "error"' not in process.output(), process.output()[-4000:]

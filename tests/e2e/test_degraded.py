"""API.md §1 `rate_limited` 429 and `service_unavailable` 503, each against its own API process."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from app.bootstrap import Services
from payments.client import AsyncClient, Retries, ServiceUnavailable
from tests.conftest import new_api_key
from tests.e2e.conftest import Process, free_port, stack_env, start_api
from tests.e2e.helpers import API, assert_problem, case, key, transfer_body, wait_live

RATE = 5


@pytest.fixture(scope="module")
def limited_api(database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second API process allowing each key 5 requests per second (bursts of 5)."""
    log = tmp_path_factory.mktemp("limited") / "api.log"
    base_url, process = start_api(database_url, redis_url, log, PAYMENTS_RATE_LIMIT_REQUESTS_PER_SECOND=str(RATE))
    yield base_url
    process.stop()


@pytest.fixture(scope="module")
async def broken_api(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A third API process whose database is a closed port: it lives, but is never ready."""
    log = tmp_path_factory.mktemp("broken") / "api.log"
    port = free_port()
    env = stack_env("postgresql://root@127.0.0.1:1/nothing", redis_url, port)
    process = Process(["serve"], env, log).start()
    base_url = f"http://127.0.0.1:{port}"
    try:
        await wait_live(base_url, process)
        yield base_url
    finally:
        process.stop()


async def test_rate_limited(limited_api: str, services: Services) -> None:
    limited, other = await new_api_key(services), await new_api_key(services)
    async with httpx.AsyncClient(base_url=limited_api, headers={"Authorization": f"Bearer {limited}"},
                                 timeout=30) as http:
        assert (await http.get(f"{API}/accounts")).status_code == 200  # the key is known (and cached) before the burst
        responses = await asyncio.gather(*(http.get(f"{API}/accounts") for _ in range(4 * RATE)))
        statuses = Counter(response.status_code for response in responses)
        assert set(statuses) == {200, 429}, statuses
        assert statuses[200] >= RATE - 1, f"a full bucket allows a burst of {RATE}: {statuses}"
        waits = set()
        for response in responses:
            if response.status_code == 429:
                assert_problem(response, "rate_limited", 429)
                assert response.headers["Retry-After"].isdigit(), response.headers
                waits.add(int(response.headers["Retry-After"]))
        assert min(waits) >= 1
        # The limit is per key: another key of the same process is unaffected.
        async with httpx.AsyncClient(base_url=limited_api, headers={"Authorization": f"Bearer {other}"}) as fresh:
            assert (await fresh.get(f"{API}/accounts")).status_code == 200
        # After waiting as told, the limited key may go on.
        await asyncio.sleep(max(waits))
        assert (await http.get(f"{API}/accounts")).status_code == 200


async def test_health_needs_no_key_and_is_not_limited(limited_api: str) -> None:
    async with httpx.AsyncClient(base_url=limited_api, timeout=30) as http:
        responses = await asyncio.gather(*(http.get("/health/live") for _ in range(4 * RATE)))
        assert {response.status_code for response in responses} == {200}


async def test_service_unavailable(broken_api: str, api_key: str) -> None:
    async with httpx.AsyncClient(base_url=broken_api, headers={"Authorization": f"Bearer {api_key}"},
                                 timeout=30) as http:
        for method, path, options in (
            ("GET", f"{API}/accounts", {}),
            ("GET", f"{API}/accounts/00000000-0000-0000-0000-000000000001/balance", {}),
            ("POST", f"{API}/accounts", {"json": {"user_id": "a", "currency": "USD"}}),
            ("POST", f"{API}/transfers", {"json": transfer_body("00000000-0000-0000-0000-000000000001",
                                                                "00000000-0000-0000-0000-000000000002", "1.00"),
                                          "headers": {"Idempotency-Key": key()}}),
        ):
            with case((method, path)):
                response = await http.request(method, path, **options)
                assert_problem(response, "service_unavailable", 503)
                assert response.headers["Retry-After"].isdigit(), "every 503 says when to come back (API.md §1)"
        ready = await http.get("/health/ready")
        assert ready.status_code == 503
        assert ready.headers["Retry-After"].isdigit()
        body = ready.json()
        assert body["status"] != "ready"
        assert body["checks"]["database"] != "ok", "the failing check is named"
        assert body["checks"]["redis"] == "ok", "only the failing dependency is reported as failing"
        assert (await http.get("/health/live")).status_code == 200
        assert (await http.get("/health")).status_code == 200
        metrics = await http.get("/metrics")
        assert metrics.status_code == 200 and "http_requests_total" in metrics.text


async def test_the_client_waits_out_429_as_told_and_does_each_write_once(limited_api: str,
                                                                         services: Services) -> None:
    """payments.client against a real rate limit: a burst three times the bucket all lands, after the Retry-After waits,
    and every account is opened exactly once (a 429 stored nothing under the key)."""
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(seconds)

    key = await new_api_key(services)
    async with AsyncClient(limited_api, key, retries=Retries(attempts=8), sleep=sleep) as client:
        await client.accounts.list()  # the key is known (and cached) before the burst
        opened = await asyncio.gather(*(client.accounts.create(user_id=f"burst-{n}", currency="USD")
                                        for n in range(3 * RATE)))
        assert waits and min(waits) >= 1, waits  # some were limited, and waited what Retry-After said
        listed = [account.user_id async for account in client.accounts.iterate()]
    assert sorted(listed) == sorted(account.user_id for account in opened) == sorted(
        f"burst-{n}" for n in range(3 * RATE))


async def test_the_client_raises_503_once_its_attempts_run_out(broken_api: str, api_key: str) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async with AsyncClient(broken_api, api_key, retries=Retries(attempts=2), sleep=sleep) as client:
        with pytest.raises(ServiceUnavailable) as raised:
            await client.accounts.create(user_id="a", currency="USD")
    assert raised.value.code == "service_unavailable" and raised.value.retry_after is not None
    assert waits == [raised.value.retry_after]  # one wait, as long as Retry-After said

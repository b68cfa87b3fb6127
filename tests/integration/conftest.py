"""What the integration tests share: a stack (database, Redis, services) of a test's own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.bootstrap import Services, bootstrap
from app.configuration import load_settings
from tests.conftest import SECRETS_KEYS, fresh_database
from tests.e2e.isolated import PrivateRedis


@pytest.fixture
async def own_stack(admin_database_url: str, tmp_path: Path) -> AsyncIterator[tuple[Services, str, str]]:
    """A database and a Redis of this test's own: no other worker (the e2e suite's) relays its events."""
    with fresh_database(admin_database_url) as database_url:
        private = PrivateRedis(tmp_path / "redis").start()
        services = await bootstrap(load_settings({"PAYMENTS_SECRETS_KEYS": SECRETS_KEYS}), database_url, private.url)
        try:
            yield services, database_url, private.url
        finally:
            await services.aclose()
            private.stop()

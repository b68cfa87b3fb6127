"""`payments keys create --if-none`: a tenant's first key, once. Without a live key it creates one (the key alone on
stdout, as `keys create`); while the tenant has a live key it creates none, prints nothing on stdout, says so on
stderr and exits 0; once every key is revoked it creates one again."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.conftest import ROOT, fresh_database

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def fresh_url(admin_database_url: str) -> Iterator[str]:
    """A new, migrated database of its own (the dev tenant must not exist yet), dropped afterwards."""
    with fresh_database(admin_database_url) as url:
        yield url


def payments_env(database_url: str, redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMENTS_")}
    env.update(PAYMENTS_DATABASE_URL=database_url, PAYMENTS_REDIS_URL=redis_url,
               PAYMENTS_OBSERVABILITY_LOG_LEVEL="warning")
    return env


def payments(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "payments", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def live_keys(env: dict[str, str], tenant: str) -> list[list[str]]:
    listed = payments(env, "keys", "list", "--tenant", tenant)
    assert listed.returncode == 0, listed.stderr
    return [row.split() for row in listed.stdout.splitlines()[1:] if row.split()[-1] == "-"]


def test_if_none_creates_a_first_key_once(fresh_url: str, redis_url: str) -> None:
    env = payments_env(fresh_url, redis_url)
    tenant = f"first-{secrets.token_hex(3)}"

    first = payments(env, "keys", "create", "--tenant", tenant, "--if-none")
    assert first.returncode == 0, first.stderr
    key = first.stdout.strip()
    assert key.startswith("sk_") and len(key) == 46, first.stdout
    assert [row[2] for row in live_keys(env, tenant)] == [f"{key[:10]}...{key[-4:]}"]

    again = payments(env, "keys", "create", "--tenant", tenant, "--if-none")
    assert again.returncode == 0, again.stderr
    assert again.stdout == "" and "sk_" not in again.stderr, again
    assert f"tenant {tenant!r} already has 1 live API key(s)" in again.stderr
    assert f"payments keys list --tenant {tenant}" in again.stderr
    assert len(live_keys(env, tenant)) == 1

    # without the flag, `keys create` makes another key as before
    other = payments(env, "keys", "create", "--tenant", tenant)
    assert other.returncode == 0 and other.stdout.strip().startswith("sk_"), other.stderr
    assert len(live_keys(env, tenant)) == 2
    assert "2 live API key(s)" in payments(env, "keys", "create", "--tenant", tenant, "--if-none").stderr

    # a revoked key does not count: with none live, --if-none creates one again
    for row in live_keys(env, tenant):
        assert payments(env, "keys", "revoke", row[0]).returncode == 0
    assert live_keys(env, tenant) == []
    renewed = payments(env, "keys", "create", "--tenant", tenant, "--if-none")
    assert renewed.returncode == 0 and renewed.stdout.strip().startswith("sk_"), renewed.stderr
    assert len(live_keys(env, tenant)) == 1


def test_if_none_fails_loudly_without_a_database(admin_database_url: str, redis_url: str) -> None:
    """A database that does not exist: an error exit, never an empty stdout taken for 'already has a key'."""
    from tests.conftest import _with_database

    env = payments_env(_with_database(admin_database_url, f"missing_{secrets.token_hex(4)}"), redis_url)
    failed = payments(env, "keys", "create", "--tenant", "dev", "--if-none")
    assert failed.returncode != 0 and failed.stdout == "", failed

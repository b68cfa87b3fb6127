"""`payments keys create --if-none`: a tenant's first key, once. Without a live key it creates one (the key alone on
stdout, as `keys create`); while the tenant has a live key it creates none, prints nothing on stdout, says so on
stderr and exits 0; once every key is revoked it creates one again.

And compose.yaml's first-key service outside Docker: its exact script, run by `sh` with the service's environment
(the database and Redis URLs pointed at the test servers), and `payments` a stand-in for the image's console script
that runs this checkout's code, against a fresh database, twice."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, _with_database, fresh_database
from tests.unit.test_compose import _compose, first_key_script

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
    env = payments_env(_with_database(admin_database_url, f"missing_{secrets.token_hex(4)}"), redis_url)
    failed = payments(env, "keys", "create", "--tenant", "dev", "--if-none")
    assert failed.returncode != 0 and failed.stdout == "", failed


def service_env(database_url: str, redis_url: str, bin_dir: Path) -> dict[str, str]:
    """The first-key service's environment, compose's `${NAME:-default}` taken at its default, with the servers
    of the test run and `bin_dir` first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMENTS_")}
    for name, value in _compose()["services"]["first-key"]["environment"].items():
        env[name] = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value))
    env.update(PAYMENTS_DATABASE_URL=database_url, PAYMENTS_REDIS_URL=redis_url,
               PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}")
    return env


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    """A `payments` on PATH that runs this checkout (the image's console script runs the installed wheel)."""
    path = tmp_path / "bin"
    path.mkdir()
    shim = path / "payments"
    shim.write_text(f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{sys.executable}" -m payments "$@"\n')
    shim.chmod(0o755)
    return path


def first_key(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", first_key_script()], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def test_the_first_key_service_prints_a_key_once(fresh_url: str, redis_url: str, bin_dir: Path,
                                                  tmp_path: Path) -> None:
    env = service_env(fresh_url, redis_url, bin_dir)
    first = first_key(env, tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    keys = re.findall(r"\bsk_\w+", first.stdout)
    assert len(set(keys)) == 1, first.stdout
    key = keys[0]
    assert len(key) == 46
    assert re.search(rf"^  Dev API key    {key}$", first.stdout, re.MULTILINE), first.stdout
    assert "  Payments API   http://localhost:8080\n" in first.stdout
    assert "  Mock providers http://localhost:8090/_mock/charges\n" in first.stdout
    assert f"curl -H 'Authorization: Bearer {key}' http://localhost:8080/api/v1/accounts" in first.stdout
    assert "created an API key for tenant 'dev'" in first.stderr
    plain_env = payments_env(fresh_url, redis_url)
    assert [row[2] for row in live_keys(plain_env, "dev")] == [f"{key[:10]}...{key[-4:]}"]

    # a restart (`docker compose up` again): no new key, and what to do instead
    again = first_key(env, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "sk_" not in again.stdout + again.stderr, again
    assert "tenant 'dev' already has 1 live API key(s)" in again.stderr
    assert "docker compose logs first-key" in again.stdout
    assert "docker compose run --rm api payments keys list --tenant dev" in again.stdout
    assert "docker compose run --rm api payments keys create --tenant dev" in again.stdout
    assert len(live_keys(plain_env, "dev")) == 1


def test_the_first_key_service_fails_when_the_database_does_not_answer(admin_database_url: str, redis_url: str,
                                                                        bin_dir: Path, tmp_path: Path) -> None:
    """`set -e`: the service exits non-zero (compose reports it) instead of saying the tenant has a key."""
    env = service_env(_with_database(admin_database_url, f"missing_{secrets.token_hex(4)}"), redis_url, bin_dir)
    failed = first_key(env, tmp_path)
    assert failed.returncode != 0, failed
    assert "sk_" not in failed.stdout and "docker compose" not in failed.stdout, failed.stdout

"""`payments keys create | list | revoke` against a real API of two processes (API.md §1): keys are `sk_`, listed
without their values but with their prefix, last four, scopes, creation and last use, and a revoked key is refused
by every API process within 10 s."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ROOT
from tests.e2e.conftest import stack_env, start_api
from tests.e2e.helpers import API, assert_problem

#: API.md §1: "every process refuses it within 10 s".
REFUSED_WITHIN = 10.0


@pytest.fixture(scope="module")
def two_workers(database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An API of two processes, each with its own key cache."""
    log = tmp_path_factory.mktemp("keys") / "api.log"
    base_url, process = start_api(database_url, redis_url, log, PAYMENTS_SERVER_WORKERS="2")
    yield base_url
    process.stop()


def keys(database_url: str, redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "payments", "keys", *args], check=False, cwd=ROOT, text=True,
                          capture_output=True, timeout=60, env=stack_env(database_url, redis_url, 8080))


def listed(database_url: str, redis_url: str, tenant: str) -> list[list[str]]:
    done = keys(database_url, redis_url, "list", "--tenant", tenant)
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    assert header.split()[:4] == ["ID", "TENANT", "KEY", "SCOPES"]
    return [row.split() for row in rows]


async def statuses(base_url: str, key: str, count: int) -> list[int]:
    """`count` requests on fresh connections (so that both API processes answer some)."""
    async def one() -> int:
        async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {key}"}) as client:
            return (await client.get(f"{API}/accounts")).status_code
    return list(await asyncio.gather(*(one() for _ in range(count))))


async def test_create_list_use_and_revoke_a_key(two_workers: str, database_url: str, redis_url: str) -> None:
    tenant = f"keys-{secrets.token_hex(4)}"
    made = keys(database_url, redis_url, "create", "--tenant", tenant, "--scopes", "read")
    assert made.returncode == 0, made.stderr
    plain = made.stdout.strip().splitlines()[-1]
    assert plain.startswith("sk_") and len(plain) == 46 and plain[3:].isalnum()
    other = keys(database_url, redis_url, "create", "--tenant", tenant).stdout.strip().splitlines()[-1]

    rows = listed(database_url, redis_url, tenant)
    assert [row[2] for row in rows] == [f"{plain[:10]}...{plain[-4:]}", f"{other[:10]}...{other[-4:]}"]
    assert [row[3] for row in rows] == ["read", "read,write"]
    assert all(plain not in " ".join(row) and row[5] == "-" and row[6] == "-" for row in rows)  # never used
    key_id = rows[0][0]

    assert await statuses(two_workers, plain, 20) == [200] * 20
    for _ in range(100):  # the use is noted in the background, once per key lookup
        if (used := listed(database_url, redis_url, tenant)[0][5]) != "-":
            break
        await asyncio.sleep(0.1)
    assert used.startswith("20"), used

    loop = asyncio.get_running_loop()
    asked = loop.time()
    revoked = keys(database_url, redis_url, "revoke", key_id)
    assert revoked.returncode == 0 and "revoked" in revoked.stdout, revoked.stderr
    # Until the bound the contract gives, a process may still accept it from its cache; from then on none does.
    await asyncio.sleep(max(0.0, asked + REFUSED_WITHIN - loop.time()))
    assert await statuses(two_workers, plain, 40) == [401] * 40
    async with httpx.AsyncClient(base_url=two_workers, headers={"Authorization": f"Bearer {plain}"}) as client:
        assert_problem(await client.get(f"{API}/accounts"), "unauthorized", 401)
    assert await statuses(two_workers, other, 10) == [200] * 10  # the tenant's other key is untouched

    again = keys(database_url, redis_url, "revoke", key_id)
    assert again.returncode == 0 and "already revoked" in again.stdout
    assert listed(database_url, redis_url, tenant)[0][6].startswith("20")


def test_what_the_keys_commands_refuse(database_url: str, redis_url: str) -> None:
    assert keys(database_url, redis_url, "revoke", "not-a-uuid").returncode == 2
    unknown = keys(database_url, redis_url, "revoke", "00000000-0000-7000-8000-000000000000")
    assert unknown.returncode == 1 and "no API key" in unknown.stderr
    assert keys(database_url, redis_url, "create", "--tenant", "x", "--scopes", "admin").returncode == 2
    assert keys(database_url, redis_url, "list", "--tenant", f"nobody-{secrets.token_hex(4)}").stdout.count("\n") == 1

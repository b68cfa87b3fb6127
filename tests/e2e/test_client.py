"""`payments.client` against the whole stack: a lost answer retried moves the money once, and the guide's first
script (docs/api/client.md), copied as a newcomer would, runs."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx

from payments.client import AsyncClient
from tests.e2e.apiflow import balance, funded
from tests.e2e.conftest import Stack

ROOT = Path(__file__).resolve().parents[2]


def _first_script() -> str:
    guide = (ROOT / "docs" / "api" / "client.md").read_text(encoding="utf-8")
    found = re.search(r"```python\n(.*?)```", guide, re.DOTALL)
    assert found, "docs/api/client.md has no python block"
    return found[1]


async def test_the_guides_first_script_runs(stack: Stack, api_key: str, tmp_path: Path) -> None:
    script = tmp_path / "first.py"
    script.write_text(_first_script(), encoding="utf-8")
    env = {**os.environ, "PAYMENTS_URL": stack.base_url, "PAYMENTS_API_KEY": api_key}
    ran = await asyncio.to_thread(subprocess.run, [sys.executable, str(script)], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[:3] == ["completed 12.34", "12.34", "422 insufficient_funds"], ran.stdout
    assert lines[3:] == ["debit -12.34 87.66", "credit 100.00 100.00"], ran.stdout  # newest first


class LosesFirstAnswers(httpx.AsyncBaseTransport):
    """Sends every request to the server, but loses the answers to the first `lose` writes on the way back,
    as a timeout after the server acted would."""

    def __init__(self, lose: int) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.lose = lose
        self.writes: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method != "GET":
            self.writes.append(request)
            if len(self.writes) <= self.lose:
                await response.aclose()
                raise httpx.ReadTimeout("the answer was lost", request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_write_whose_answers_were_lost_is_done_once(stack: Stack, api_key: str, api: AsyncClient) -> None:
    source, destination = await funded(api, "100.00"), await funded(api, "0.00")
    lossy = LosesFirstAnswers(lose=2)
    async with httpx.AsyncClient(transport=lossy, timeout=30) as http:
        flaky = AsyncClient(stack.base_url, api_key, http=http, sleep=lambda _: asyncio.sleep(0))
        payment = await flaky.transfers.create(source_account_id=source, destination_account_id=destination,
                                               amount="30.00", currency="USD")
    assert len(lossy.writes) == 3 and len({w.headers["idempotency-key"] for w in lossy.writes}) == 1
    assert (await balance(api, source), await balance(api, destination)) == ("70.00", "30.00")
    listed = [p.id async for p in api.payments.iterate(account_id=source)]
    assert listed == [payment.id]  # one payment: the retries replayed it

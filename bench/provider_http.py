"""CPU per provider call: the provider clients' transport (aiohttp) against httpx, the same POST to the mock server.

    .venv/bin/python bench/provider_http.py                 # 3,000 calls a side, 8 at a time, 3 alternated rounds
    .venv/bin/python bench/provider_http.py --calls 5000 --concurrency 16 --rounds 5

Starts `payments mock-providers` on a free port (0 ms latency), then sends Stripe-like charges (form-encoded, an
idempotency key each) through `AiohttpTransport` and through an `httpx.AsyncClient` as the clients sent them until
7 December 2026, alternating, on uvloop as the worker runs. Prints each side's client CPU per call (this process's
`process_time`, the server's excluded) and calls per second, and the median of the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlencode

import httpx
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.providers.transport import AiohttpTransport  # noqa: E402

Send = Callable[[str, bytes, dict[str, str]], Awaitable[tuple[int, bytes]]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the mock provider server exited")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit("the mock provider server did not start")


async def measure(send: Send, url: str, calls: int, concurrency: int, tag: str) -> tuple[float, float]:
    """Client CPU ms per call and calls per second."""
    slots = asyncio.Semaphore(concurrency)

    async def one(n: int) -> None:
        body = urlencode({"amount": "1050", "currency": "usd", "confirm": "true",
                          "metadata[payment_id]": f"{tag}-{n}"}).encode()
        headers = {"Authorization": "Bearer sk_bench", "Accept": "application/json", "Idempotency-Key": f"{tag}-{n}",
                   "Content-Type": "application/x-www-form-urlencoded"}
        async with slots:
            status, _ = await send(url, body, headers)
            assert status == 200, status

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(calls)))
    return (time.process_time() - cpu) / calls * 1000, calls / (time.perf_counter() - wall)


async def run(url: str, args: argparse.Namespace) -> None:
    transport = AiohttpTransport()
    client = httpx.AsyncClient()

    async def via_aiohttp(target: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        return await transport.send("POST", target, headers, body, 10.0)

    async def via_httpx(target: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        answer = await client.request("POST", target, headers=headers, content=body, timeout=10.0)
        return answer.status_code, answer.content

    results: dict[str, list[tuple[float, float]]] = {"httpx": [], "aiohttp": []}
    try:
        await measure(via_aiohttp, url, 200, args.concurrency, "warm-a")
        await measure(via_httpx, url, 200, args.concurrency, "warm-h")
        for round_ in range(args.rounds):
            for name, send in (("httpx", via_httpx), ("aiohttp", via_aiohttp)):
                cpu, rate = await measure(send, url, args.calls, args.concurrency, f"{name}-{round_}-{os.getpid()}")
                results[name].append((cpu, rate))
                print(f"round {round_ + 1}  {name:8} {cpu:6.3f} ms CPU a call  {rate:8.0f} calls/s", flush=True)
    finally:
        await transport.aclose()
        await client.aclose()
    print()
    for name, rows in results.items():
        print(f"median {name:8} {statistics.median(r[0] for r in rows):6.3f} ms CPU a call  "
              f"{statistics.median(r[1] for r in rows):8.0f} calls/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000, help="calls a side a round (default: %(default)s)")
    parser.add_argument("--concurrency", type=int, default=8, help="calls in flight (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds (default: %(default)s)")
    args = parser.parse_args()
    port = free_port()
    env = {**os.environ, "PAYMENTS_MOCK_PORT": str(port), "PAYMENTS_MOCK_LATENCY": "0"}
    server = subprocess.Popen([sys.executable, "-m", "payments", "mock-providers"], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/_mock/charges", server)
        uvloop.run(run(f"{base}/stripe/v1/payment_intents", args))
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()

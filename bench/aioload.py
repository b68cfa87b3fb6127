"""Fallback load generator when wrk is not installed: asyncio streams, raw HTTP/1.1 keep-alive.

Does what bench/transfers.lua does for wrk (one connection per client, a fresh body and
Idempotency-Key per request, closed loop for a fixed duration) and prints the same
`BENCH_RESULT {json}` line. bench/run.py runs it as a subprocess so its CPU is measured.

    python bench/aioload.py CONFIG.json
    CONFIG: {"host", "port", "clients", "duration", "accounts": [...], "hot": id | null, "api_key", "run"}
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections import Counter

try:  # uvloop is a dependency of sanic; it makes this client about twice as cheap
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None


async def client(index: int, config: dict, deadline: float, latencies: list[int], statuses: Counter,
                 errors: Counter) -> None:
    rng = random.Random(index * 7919 + time.time_ns())
    accounts, hot = config["accounts"], config["hot"]
    head = (f"POST /api/v1/transfers HTTP/1.1\r\nHost: {config['host']}:{config['port']}\r\n"
            f"Authorization: Bearer {config['api_key']}\r\nContent-Type: application/json\r\n")
    try:
        reader, writer = await asyncio.open_connection(config["host"], config["port"])
    except OSError:
        errors["connect"] += 1
        return
    counter = 0
    try:
        while time.monotonic() < deadline:
            counter += 1
            if hot:
                source, destination = hot, rng.choice(accounts)
            else:
                source, destination = rng.sample(accounts, 2)
            cents = rng.randint(1, 100)
            body = (f'{{"source_account_id":"{source}","destination_account_id":"{destination}",'
                    f'"amount":"{cents // 100}.{cents % 100:02d}","currency":"USD"}}').encode()
            request = (head + f"Idempotency-Key: {config['run']}-{index}-{counter}\r\n"
                       f"Content-Length: {len(body)}\r\n\r\n").encode() + body
            started = time.perf_counter_ns()
            writer.write(request)
            header = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
            length = 0
            for line in header.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            latencies.append((time.perf_counter_ns() - started) // 1000)
            statuses[int(header[9:12])] += 1
    except TimeoutError:
        errors["timeout"] += 1
    except (OSError, asyncio.IncompleteReadError, ValueError):
        errors["read"] += 1
    finally:
        writer.close()


async def main(config: dict) -> None:
    latencies: list[int] = []
    statuses: Counter = Counter()
    errors: Counter = Counter()
    started = time.monotonic()
    deadline = started + config["duration"]
    await asyncio.gather(*(client(i, config, deadline, latencies, statuses, errors)
                           for i in range(config["clients"])))
    elapsed = time.monotonic() - started
    latencies.sort()

    def pct(p: float) -> int:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))] if latencies else 0

    result = {
        "requests": len(latencies), "duration_us": int(elapsed * 1e6),
        "mean_us": sum(latencies) / len(latencies) if latencies else 0.0,
        "p50_us": pct(50), "p90_us": pct(90), "p99_us": pct(99), "max_us": latencies[-1] if latencies else 0,
        "errors": {"connect": errors["connect"], "read": errors["read"], "write": 0,
                   "status": sum(n for s, n in statuses.items() if s >= 400), "timeout": errors["timeout"]},
        "statuses": {str(s): n for s, n in statuses.items()},
    }
    print("BENCH_RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    with open(sys.argv[1]) as handle:
        configuration = json.load(handle)
    if uvloop is not None:
        uvloop.run(main(configuration))
    else:
        asyncio.run(main(configuration))

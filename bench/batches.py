"""Transfers per second through POST /api/v1/batches (100 transfers a batch) beside single POST /transfers.

    .venv/bin/python bench/batches.py                      # singles, then atomic and non-atomic batches of 100
    .venv/bin/python bench/batches.py --duration 6 --clients 32 --batch-clients 4 --size 100

One run, one fresh database, one API process: each scenario loads it for --duration seconds (closed loop,
one keep-alive connection per client, a fresh Idempotency-Key per request, random distinct account pairs)
and the table shows requests/s and transfers/s side by side. The load generator runs in this process
(asyncio streams, raw HTTP/1.1, as bench/aioload.py), on the same machine as the API and PostgreSQL.
docs/benchmarks.md ("Batches") has the numbers and how to read them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import (  # noqa: E402 (the path above makes `bench` importable when run as a script)
    Sampler,
    api_env,
    create_accounts,
    create_database,
    create_key,
    drop_database,
    free_port,
    server_facts,
    start_server,
    stop_server,
    summarize_profile,
)


def transfer(rng: random.Random, accounts: list[str]) -> str:
    source, destination = rng.sample(accounts, 2)
    cents = rng.randint(1, 100)
    return (f'{{"source_account_id":"{source}","destination_account_id":"{destination}",'
            f'"amount":"{cents // 100}.{cents % 100:02d}","currency":"USD"}}')


def body_for(scenario: dict[str, Any], rng: random.Random, accounts: list[str]) -> tuple[str, bytes]:
    """The path and body of one request of `scenario`."""
    if scenario["size"] == 0:
        return "/api/v1/transfers", transfer(rng, accounts).encode()
    legs = ",".join(transfer(rng, accounts) for _ in range(scenario["size"]))
    atomic = "true" if scenario["atomic"] else "false"
    return "/api/v1/batches", f'{{"atomic":{atomic},"transfers":[{legs}]}}'.encode()


async def client(index: int, scenario: dict[str, Any], config: dict[str, Any], deadline: float,
                 latencies: list[int], statuses: Counter[int]) -> None:
    rng = random.Random(index * 7919 + time.time_ns())
    reader, writer = await asyncio.open_connection(config["host"], config["port"])
    counter = 0
    try:
        while time.monotonic() < deadline:
            counter += 1
            path, body = body_for(scenario, rng, config["accounts"])
            request = (f"POST {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {config['key']}\r\n"
                       f"Content-Type: application/json\r\nIdempotency-Key: {config['run']}-{index}-{counter}\r\n"
                       f"Content-Length: {len(body)}\r\n\r\n").encode() + body
            started = time.perf_counter_ns()
            writer.write(request)
            header = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=30)
            length = next((int(line.partition(b":")[2]) for line in header.split(b"\r\n")[1:]
                           if line.partition(b":")[0].strip().lower() == b"content-length"), 0)
            if length:
                await reader.readexactly(length)
            latencies.append((time.perf_counter_ns() - started) // 1000)
            statuses[int(header[9:12])] += 1
    finally:
        writer.close()


async def load(scenario: dict[str, Any], config: dict[str, Any], duration: float) -> dict[str, Any]:
    latencies: list[int] = []
    statuses: Counter[int] = Counter()
    started = time.monotonic()
    await asyncio.gather(*(client(i, scenario, config, started + duration, latencies, statuses)
                           for i in range(scenario["clients"])))
    elapsed = time.monotonic() - started
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))] / 1000 if latencies else 0.0

    made = statuses[201] if scenario["size"] == 0 or scenario["atomic"] else None
    per_request = max(scenario["size"], 1)
    transfers = (made * per_request) if made is not None else statuses[200] * per_request
    return {"name": scenario["name"], "clients": scenario["clients"], "requests": len(latencies),
            "rate": len(latencies) / elapsed, "transfers_rate": transfers / elapsed, "p50": pct(50), "p99": pct(99),
            "statuses": dict(statuses)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgresql://root@127.0.0.1:5432/postgres",
                        help="server to benchmark; a fresh database is created on it (default: %(default)s)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per scenario (default: %(default)s)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients of single transfers")
    parser.add_argument("--batch-clients", type=int, default=4, help="concurrent clients of batches")
    parser.add_argument("--size", type=int, default=100, help="transfers per batch (default: %(default)s)")
    parser.add_argument("--accounts", type=int, default=1000, help="accounts the transfers move money between")
    parser.add_argument("--api-workers", type=int, default=1, help="PAYMENTS_SERVER_WORKERS")
    parser.add_argument("--pool-max", type=int, default=0, help="PAYMENTS_DATABASE_POOL_MAX (0: the default)")
    parser.add_argument("--no-non-atomic", action="store_true", help="leave out the non-atomic batches")
    parser.add_argument("--no-single", action="store_true",
                        help="leave out the single transfers (no ratio is printed then)")
    parser.add_argument("--profile", type=float, default=0.0, metavar="SECONDS",
                        help="after the measured runs, py-spy the API during SECONDS more of atomic batches "
                             "(unrecorded) and print its top functions")
    parser.add_argument("--profile-out", default="/tmp/batches-profile.txt", help="py-spy's raw stacks")
    parser.add_argument("--keep-database", action="store_true")
    return parser.parse_args(argv)


def report(rows: list[dict[str, Any]], *, single: bool) -> None:
    """The table of the measured runs, CPU per transfer included, and each batch scenario's ratio to singles."""
    print(f"\n{'scenario':<28} {'clients':>7} {'requests/s':>11} {'transfers/s':>12} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'API %':>6} {'DB %':>6} {'other %':>8} {'API ms/t':>9} {'DB ms/t':>8}  statuses")
    for row in rows:
        made = max(1.0, row["transfers_rate"] * row["seconds"])
        print(f"{row['name']:<28} {row['clients']:>7} {row['rate']:>11.0f} {row['transfers_rate']:>12.0f} "
              f"{row['p50']:>8.1f} {row['p99']:>8.1f} {row['api_cpu']:>6.0f} {row['db_cpu']:>6.0f} "
              f"{row['other_cpu']:>8.0f} {1000 * row['api_seconds'] / made:>9.3f} "
              f"{1000 * row['backend_seconds'] / made:>8.3f}  {json.dumps(row['statuses'])}")
    print("API %, DB %: CPU of the API process and of PostgreSQL, in % of one core; other %: everything else on "
          "the machine but this load generator (other people's work: noise); API ms/t, DB ms/t: CPU ms per "
          "transfer made of the API process and of this database's backends")
    if single:
        base = rows[0]["transfers_rate"] or 1
        for row in rows[1:]:
            print(f"{row['name']}: {row['transfers_rate'] / base:.1f}x the transfers/s of single transfers")


def profile(args: argparse.Namespace, pid: int, scenario: dict[str, Any], config: dict[str, Any]) -> None:
    """py-spy on the API during an extra, unrecorded run of `scenario`; its top functions, self and inclusive."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("py-spy not found (pip install py-spy); no profile", file=sys.stderr)
        return
    seconds, out = max(1, round(args.profile)), Path(args.profile_out)
    spy_proc = subprocess.Popen([spy, "record", "--format", "raw", "--rate", "200", "-d", str(seconds), "-o",
                                 str(out), "--pid", str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    time.sleep(0.5)
    asyncio.run(load(scenario, {**config, "run": f"profile-{time.time_ns()}"}, seconds + 1.0))
    try:
        spy_proc.wait(seconds + 30)
    except subprocess.TimeoutExpired:
        spy_proc.kill()
    print(f"\nprofile: py-spy {seconds} s of {scenario['name']}; raw stacks in {out}")
    print(summarize_profile(out, seconds * 200, top=40) if out.exists() else "py-spy wrote nothing")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    batches = {"name": f"atomic batches of {args.size}", "size": args.size, "atomic": True,
               "clients": args.batch_clients}
    scenarios = [] if args.no_single else [{"name": "single transfers", "size": 0, "atomic": True,
                                            "clients": args.clients}]
    scenarios.append(batches)
    if not args.no_non_atomic:
        scenarios.append({"name": f"non-atomic batches of {args.size}", "size": args.size, "atomic": False,
                          "clients": args.batch_clients})
    name, database_url = create_database(args.database_url)
    tmp = Path(tempfile.mkdtemp(prefix="payments-bench-batches-"))
    server = None
    try:
        from adapters.postgres.migrate import apply_migrations

        apply_migrations(database_url)
        port = free_port()
        env = api_env(args, database_url, port, what_if=[])
        base_url = f"http://127.0.0.1:{port}"
        key = create_key(env)
        server = start_server(env, tmp / "api.log", base_url)
        accounts = asyncio.run(create_accounts(base_url, key, args.accounts))
        config = {"host": "127.0.0.1", "port": port, "key": key, "accounts": accounts}
        print(f"database {name}, {server_facts(database_url)}; API pid {server.pid}, {args.api_workers} worker(s); "
              f"{len(accounts)} accounts; {args.duration:g} s per scenario", flush=True)
        rows = []
        for scenario in scenarios:
            asyncio.run(load(scenario, {**config, "run": f"warm-{time.time_ns()}"}, 1.0))  # warm up, unrecorded
            sampler = Sampler(server.pid, name)
            sampler.start()
            row = asyncio.run(load(scenario, {**config, "run": f"run-{time.time_ns()}"}, args.duration))
            rows.append({**row, **sampler.stop(), "seconds": args.duration})
        report(rows, single=not args.no_single)
        if args.profile:
            profile(args, server.pid, batches, config)
        return 0
    finally:
        stop_server(server)
        if not args.keep_database:
            drop_database(args.database_url, name)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

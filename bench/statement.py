"""A statement of a million entries, streamed: time, throughput, and the API process's memory while it streams.

    .venv/bin/python bench/statement.py                       # 1,000,000 entries, CSV then JSON
    .venv/bin/python bench/statement.py --entries 100000 --small 10000

One fresh database, one API process. The entries of one account (each a posting with a second account, as
the ledger requires) are written straight into PostgreSQL with `generate_series`: a million transfers through
the API would take long and measure something else. Then `GET /accounts/{id}/statement` is read for the small
period (the first --small entries) and for the whole period, as CSV and as JSON, each streamed by the client
and counted, never held; the API's resident memory (VmRSS of the server and its worker processes) is sampled
every 20 ms. If the statement streams, the peak while serving a million entries is that of serving ten
thousand. docs/benchmarks.md ("Statements") has the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import (  # noqa: E402 (the path above makes `bench` importable when run as a script)
    api_env,
    create_database,
    create_key,
    drop_database,
    free_port,
    server_facts,
    start_server,
    stop_server,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)

#: One posting per row of the series: a credit of 0.01 on the account, a debit on its counterparty. Hashes are
#: well-formed but not chained (the statement does not verify them; `ledger check` would say so).
ENTRIES = """
INSERT INTO account_transactions (id, tenant_id, account_id, posting_id, seq, type, amount, balance_after, currency,
                                  created_at, hash)
SELECT gen_random_uuid(), $1, side.account, p.posting, p.g, side.type, side.amount, side.amount * p.g, 'USD',
       $4::timestamptz + p.g * interval '1 millisecond', md5(p.g::text || side.type) || md5(side.type || p.g::text)
FROM (SELECT g, gen_random_uuid() AS posting FROM generate_series(1, $5::int) g) p,
     LATERAL (VALUES ($2::uuid, 'credit', 1), ($3::uuid, 'debit', -1)) side(account, type, amount)
"""


def rss_kib(pid: int) -> int:
    """Resident memory of `pid` and its children (Sanic's worker process), in KiB."""
    total = 0
    for path in Path("/proc").iterdir():
        if not path.name.isdigit():
            continue
        try:
            stat = (path / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if int(path.name) != pid and ppid != pid:
                continue
            for line in (path / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return total


class Peak(threading.Thread):
    """The highest `rss_kib(pid)` seen while it runs."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self._done = pid, 0, threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, rss_kib(self.pid))
            self._done.wait(0.02)

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak


async def read_statement(base_url: str, key: str, account: str, end: datetime, fmt: str) -> dict[str, Any]:
    import httpx

    params = {"from": T0.isoformat().replace("+00:00", "Z"), "to": end.isoformat().replace("+00:00", "Z"),
              "format": fmt}
    size = lines = 0
    tail = b""  # a marker may straddle two chunks
    marker = b"\n" if fmt == "csv" else b'"hash"'
    started = time.perf_counter()
    first_byte = None
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {key}"},
                                 timeout=600) as http, \
            http.stream("GET", f"/api/v1/accounts/{account}/statement", params=params) as response:
        assert response.status_code == 200, await response.aread()
        async for chunk in response.aiter_bytes():
            first_byte = first_byte or time.perf_counter()
            size += len(chunk)
            joined = tail + chunk
            lines += joined.count(marker)
            tail = joined[-(len(marker) - 1):] if len(marker) > 1 else b""
    seconds = time.perf_counter() - started
    return {"bytes": size, "entries": lines - 1 if fmt == "csv" else lines, "seconds": seconds,
            "first_byte_ms": ((first_byte or started) - started) * 1000}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgresql://root@127.0.0.1:5432/postgres",
                        help="server to benchmark; a fresh database is created on it (default: %(default)s)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    parser.add_argument("--entries", type=int, default=1_000_000, help="entries of the account (default: %(default)s)")
    parser.add_argument("--small", type=int, default=10_000, help="entries of the small period (default: %(default)s)")
    parser.add_argument("--api-workers", type=int, default=1)
    parser.add_argument("--pool-max", type=int, default=0)
    parser.add_argument("--keep-database", action="store_true")
    return parser.parse_args(argv)


async def seed(database_url: str, base_url: str, key: str, entries: int) -> str:
    import asyncpg
    import httpx

    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {key}"}) as http:
        ids = []
        for user in ("statement", "counterparty"):
            response = await http.post("/api/v1/accounts", json={"user_id": user, "currency": "USD"})
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
    conn = await asyncpg.connect(database_url)
    try:
        tenant = await conn.fetchval("SELECT tenant_id FROM accounts WHERE id = $1", ids[0])
        async with conn.transaction():  # one posting's two entries balance: the check can wait for the bench
            await conn.execute("ALTER TABLE account_transactions DISABLE TRIGGER account_transactions_balanced")
            await conn.execute(ENTRIES, tenant, ids[0], ids[1], T0, entries)
            await conn.execute("ALTER TABLE account_transactions ENABLE TRIGGER account_transactions_balanced")
        await conn.execute("ANALYZE account_transactions")
    finally:
        await conn.close()
    return str(ids[0])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    name, database_url = create_database(args.database_url)
    tmp = Path(tempfile.mkdtemp(prefix="payments-bench-statement-"))
    server = None
    try:
        from adapters.postgres.migrate import apply_migrations

        apply_migrations(database_url)
        port = free_port()
        env = api_env(args, database_url, port)
        base_url = f"http://127.0.0.1:{port}"
        key = create_key(env)
        server = start_server(env, tmp / "api.log", base_url)
        started = time.perf_counter()
        account = asyncio.run(seed(database_url, base_url, key, args.entries))
        print(f"database {name}, {server_facts(database_url)}; API pid {server.pid}; {args.entries:,} entries "
              f"written in {time.perf_counter() - started:.0f} s", flush=True)
        rows = []
        for entries in (args.small, args.entries):
            end = T0 + timedelta(milliseconds=entries + 1)
            for fmt in ("csv", "json"):
                before = rss_kib(server.pid)
                peak = Peak(server.pid)
                peak.start()
                result = asyncio.run(read_statement(base_url, key, account, end, fmt))
                rows.append({"format": fmt, "period": entries, **result, "rss_before": before, "rss_peak": peak.stop(),
                             "rss_after": rss_kib(server.pid)})
                print(json.dumps(rows[-1]), flush=True)
        print(f"\n{'format':<7} {'entries':>10} {'MB':>8} {'seconds':>8} {'entries/s':>10} {'first byte ms':>14} "
              f"{'API RSS MiB before':>19} {'peak':>6} {'after':>6}")
        for row in rows:
            assert row["entries"] == row["period"], row
            print(f"{row['format']:<7} {row['entries']:>10,} {row['bytes'] / 1e6:>8.1f} {row['seconds']:>8.1f} "
                  f"{row['entries'] / row['seconds']:>10,.0f} {row['first_byte_ms']:>14.0f} "
                  f"{row['rss_before'] / 1024:>19.1f} {row['rss_peak'] / 1024:>6.1f} {row['rss_after'] / 1024:>6.1f}")
        return 0
    finally:
        stop_server(server)
        if not args.keep_database:
            drop_database(args.database_url, name)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

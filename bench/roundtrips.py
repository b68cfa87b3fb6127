"""Count the round trips of one POST /api/v1/transfers, exactly: every database and Redis call the server makes.

    .venv/bin/python bench/roundtrips.py --redis-url redis://127.0.0.1:6379/12
    .venv/bin/python bench/roundtrips.py --transfers 50 --warmup 10 --json /tmp/roundtrips.json

It creates a fresh database (as bench/run.py does, dropped at the end), starts `payments serve` and the floor
(bench/floor.py) each inside a wrapper that records every call their asyncpg connections and Redis clients make,
then sends --warmup transfers (unrecorded: they fill the connections' statement caches) and --transfers
transfers, one at a time, to each. Sequential requests do not overlap, so every call made between the sending
of a request and the arrival of its answer is that request's (calls from other asyncio tasks, the server's
background loops, are listed apart). Printed: round trips per transfer, each kind, and the calls of one transfer
in order.

What counts as one round trip (asyncpg 0.32): a simple-protocol query (`execute` without arguments: BEGIN,
COMMIT, ROLLBACK; one message, one answer, even for several statements); an extended-protocol execution
(Bind/Execute/Sync: `fetch*`, `execute` with arguments); a Parse/Describe of a statement not yet in the
connection's cache (`prepare`: one more round trip, before its execution); a Redis command or pipeline. A
call made by another task during a request (asyncpg's pool runs a release's reset in a task of its own) is
listed apart, but it is a round trip of the request all the same when it comes once per request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

# ------------------------------------------------------------------------------------- inside the server


def install_recorder(log_path: str) -> None:
    """Wrap asyncpg's and redis's calls so that each writes one line: monotonic ns, task id, kind, text."""
    import asyncpg.connection
    import redis.asyncio.client

    log = open(log_path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process; line-buffered

    def record(kind: str, text: str) -> None:
        try:
            task = asyncio.current_task()
        except RuntimeError:
            task = None
        log.write(f"{time.monotonic_ns()} {id(task) if task else 0} {kind} {json.dumps(text)}\n")

    conn_cls: Any = asyncpg.connection.Connection
    execute, get_statement, do_execute = conn_cls.execute, conn_cls._get_statement, conn_cls._do_execute

    async def traced_execute(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        if not args:  # the simple protocol (BEGIN, COMMIT, ...); with arguments it goes through _do_execute
            record("query", query)
        return await execute(self, query, *args, **kwargs)

    async def traced_get_statement(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        # the cache's key, as _get_statement builds it: a miss costs a Parse/Describe round trip
        record_class = kwargs.get("record_class") or self._protocol.get_record_class()
        if self._stmt_cache.get((query, record_class, kwargs.get("ignore_custom_codec", False))) is None:
            record("prepare", query)
        return await get_statement(self, query, *args, **kwargs)

    async def traced_do_execute(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return await do_execute(self, query, *args, **kwargs)
        finally:  # recorded when done, so that a statement's "prepare" comes before its "execute"
            record("execute", query)

    conn_cls.execute, conn_cls._get_statement, conn_cls._do_execute = (
        traced_execute, traced_get_statement, traced_do_execute)

    redis_cls: Any = redis.asyncio.client.Redis
    pipeline_cls: Any = redis.asyncio.client.Pipeline
    command, pipeline_execute = redis_cls.execute_command, pipeline_cls.execute

    async def traced_command(self: Any, *args: Any, **options: Any) -> Any:
        if not isinstance(self, pipeline_cls):
            record("redis", " ".join(str(a) for a in args[:2]))
        return await command(self, *args, **options)

    async def traced_pipeline(self: Any, *args: Any, **kwargs: Any) -> Any:
        names = " ".join(str(c[0][0]) for c in self.command_stack)
        record("redis", f"PIPELINE {names}")
        return await pipeline_execute(self, *args, **kwargs)

    redis_cls.execute_command, pipeline_cls.execute = traced_command, traced_pipeline


def serve_traced(log_path: str, target: str, rest: list[str]) -> int:
    """`payments serve` (target "api") or the floor, with the recorder installed, in this process."""
    install_recorder(log_path)
    # bench/ is on the path (this script's folder): its payments.py would hide the `payments` package
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
    sys.path.insert(0, str(BENCH.parent))
    if target == "api":
        from payments.cli import main as payments_main

        return payments_main(["serve"])
    import importlib.util

    spec = importlib.util.spec_from_file_location("floor", BENCH / "floor.py")
    assert spec is not None and spec.loader is not None
    floor = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(floor)
    return int(floor.main(rest))


# ------------------------------------------------------------------------------------------ the driver


def transfer_calls(log_path: Path, windows: list[tuple[int, int]]) -> list[list[tuple[str, str, bool]]]:
    """For each request window, its calls: (kind, text, made by the request's own task)."""
    lines = []
    for line in log_path.read_text().splitlines():
        at, task, kind, text = line.split(" ", 3)
        lines.append((int(at), task, kind, json.loads(text)))
    out = []
    for start, end in windows:
        calls = [(task, kind, text) for at, task, kind, text in lines if start <= at <= end]
        tasks = Counter(task for task, _, _ in calls)
        main_task = tasks.most_common(1)[0][0] if tasks else ""
        out.append([(kind, text, task == main_task) for task, kind, text in calls])
    return out


def short(sql: str, width: int = 110) -> str:
    text = " ".join(sql.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def summarize(name: str, per_transfer: list[list[tuple[str, str, bool]]]) -> dict[str, Any]:
    mine = [[(k, t) for k, t, own in calls if own] for calls in per_transfer]
    others = [[(k, t) for k, t, own in calls if not own] for calls in per_transfer]
    counts = Counter(len(c) for c in mine)
    typical = Counter(tuple(c) for c in mine).most_common(1)[0][0]
    kinds = Counter(k for c in mine for k, _ in c)
    n = len(per_transfer)
    print(f"\n{name}: {n} transfers, one at a time; round trips per transfer (the request's own task): "
          + ", ".join(f"{count} in {times}" for count, times in sorted(counts.items())))
    print("  by kind, per transfer: " + ", ".join(f"{k} {v / n:.2f}" for k, v in sorted(kinds.items())))
    background = sum(len(c) for c in others)
    if background:
        examples = sorted({short(t, 60) for c in others for _, t in c})[:3]
        print(f"  other tasks meanwhile: {background} calls in all, e.g. {examples}")
    print(f"  the calls of a typical transfer ({len(typical)}):")
    for index, (kind, text) in enumerate(typical, 1):
        print(f"   {index:2d}. {kind:8s} {short(text)}")
    return {"name": name, "transfers": n, "round_trips": dict(counts), "kinds": {k: v / n for k, v in kinds.items()},
            "typical": typical, "background_calls": background}


def measure(args: argparse.Namespace, ctx: dict[str, Any], name: str, base_url: str, log: Path) -> dict[str, Any]:
    import httpx

    accounts = ctx["accounts"]
    headers = {"Authorization": f"Bearer {ctx['key']}"}
    windows: list[tuple[int, int]] = []
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as http:
        def one(index: int) -> None:
            body = {"source_account_id": accounts[index % 2], "destination_account_id": accounts[(index + 1) % 2],
                    "amount": "0.01", "currency": "USD"}
            answer = http.post("/api/v1/transfers", json=body, headers={"Idempotency-Key": f"{name}-{index}"})
            if answer.status_code != 201:
                raise RuntimeError(f"{name}: transfer answered {answer.status_code}: {answer.text}")

        for index in range(args.warmup):
            one(index)
        for index in range(args.warmup, args.warmup + args.transfers):
            start = time.monotonic_ns()
            one(index)
            windows.append((start, time.monotonic_ns()))
    return summarize(name, transfer_calls(log, windows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgresql://root@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--transfers", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--json", help="also write the results as JSON to this file")
    parser.add_argument("--rate-limit", type=int, default=0,
                        help="PAYMENTS_RATE_LIMIT_REQUESTS_PER_SECOND for the API (default 0: off, as by default)")
    args = parser.parse_args(argv)
    import run as bench

    name, database_url = bench.create_database(args.database_url)
    tmp = Path(tempfile.mkdtemp(prefix="payments-roundtrips-"))
    api = floor = None
    results = []
    try:
        bench.prepare_database(database_url, 10, [])
        settings = argparse.Namespace(redis_url=args.redis_url, api_workers=1, pool_max=0)
        port = bench.free_port()
        env = bench.api_env(settings, database_url, port, what_if=[])
        env["PAYMENTS_RATE_LIMIT_REQUESTS_PER_SECOND"] = str(args.rate_limit)
        key = bench.create_key(env)
        api_log, floor_log = tmp / "api-calls.log", tmp / "floor-calls.log"
        api = bench.start_server(env, tmp / "api.log", f"http://127.0.0.1:{port}",
                                 argv=(str(Path(__file__)), "--serve-traced", str(api_log), "api"))
        accounts = asyncio.run(bench.create_accounts(f"http://127.0.0.1:{port}", key, 2))
        ctx = {"accounts": accounts, "key": key}
        results.append(measure(args, ctx, "API (payments serve)", f"http://127.0.0.1:{port}", api_log))
        floor_port = bench.free_port()
        floor_env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMENTS_")}
        floor = bench.start_server(floor_env, tmp / "floor.log", f"http://127.0.0.1:{floor_port}", argv=(
            str(Path(__file__)), "--serve-traced", str(floor_log), "floor", "--database-url", database_url,
            "--port", str(floor_port)))
        results.append(measure(args, ctx, "floor (bench/floor.py)", f"http://127.0.0.1:{floor_port}", floor_log))
    finally:
        bench.stop_server(floor)
        bench.stop_server(api)
        bench.drop_database(args.database_url, name)
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 3 and sys.argv[1] == "--serve-traced":
        sys.exit(serve_traced(sys.argv[2], sys.argv[3], sys.argv[4:]))
    sys.exit(main())

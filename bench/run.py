"""Load benchmark of POST /api/v1/transfers, side by side with the floor (a bare app) and pgbench running the same SQL.

    .venv/bin/python bench/run.py                          # everything: ~8 min on a quiet machine
    .venv/bin/python bench/run.py --duration 8 --profile 10 --markdown /tmp/bench.md
    .venv/bin/python bench/run.py --api-workers 2 --clients 32 --pgbench-scripts 7
    .venv/bin/python bench/run.py --no-api --pgbench-scripts bare,7 --clients 32 --scenarios uniform
    .venv/bin/python bench/run.py --clients 32 --duration 8 --pgbench-scripts none   # API against the floor only
    .venv/bin/python bench/run.py --mixed 4 --clients 32 --duration 10   # hot half + uniform half; uniform alone

What it does (docs/benchmarks.md explains how to read the output):
  1. creates a fresh database on the --database-url server and applies the migrations;
  2. creates the pgbench tenant, its accounts and bench_transfer() (bench/pgbench/setup.sql), and the
     floor's bench_floor_transfer() (bench/floor.sql);
  3. starts `payments serve` (free port, rate limit off, log level warning), creates an API key
     with `payments keys create --tenant bench` and --accounts accounts over HTTP; then, unless --no-floor,
     the floor: bench/floor.py, a bare Sanic + asyncpg app that does the same transfer (lock, check, both
     balances, both hash-chained entries) as ONE call of bench_floor_transfer(), same pool size, one process;
  4. for each scenario (uniform: random distinct pairs; hot: one source, random destinations) and
     each client count: POST /api/v1/transfers for --duration seconds with wrk (bench/transfers.lua)
     or, without wrk, bench/aioload.py; then the same requests from the same generator to the floor, on the
     same accounts (the pgbench accounts with --no-api); then pgbench -M prepared with each --pgbench-scripts
     script at the same client count on the same database (without pgbench on PATH, one line says these rows
     are skipped and why; the others run). Before every run: VACUUM ANALYZE, CHECKPOINT,
     and a wait (at most --quiet-wait s) for other work on the machine to stop; a run during which
     other processes took more than --noise % of a core is repeated (at most --retries times);
  5. prints one row per run (rate, p50/p99, status codes, CPU split), the API/floor and API/pgbench ratios,
     the API-against-floor table (issue 12's target: uniform API >= 0.5 x the floor, p99 < 50 ms),
     optionally py-spy's hot spots (--profile), then stops the server and drops the database.
With --mixed ROUNDS (API only, the first --clients count N): each round runs N/2 clients on one hot source and
N/2 uniform clients at the same time, one generator process per half, and the N/2 uniform clients alone (the order
alternates between rounds); it prints each half's rate and p50/p90/p99 and the uniform half's p99 mixed / alone.
Every load run stops by itself after --duration seconds (and is killed 30-60 s after that).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
PGBENCH = BENCH / "pgbench"
FLOOR = BENCH / "floor.py"
sys.path.insert(0, str(ROOT))

#: pgbench scripts by short name (bench/pgbench/transfer_<name>.sql), in the order they run.
SCRIPTS = {
    "7": ("transfer_7.sql", "pgbench 7 statements"),
    "fn": ("transfer_fn.sql", "pgbench 1 call (function)"),
    "api": ("transfer_api.sql", "pgbench API's own SQL"),
    "bare": ("calibrate_7_bare.sql", "pgbench 7 bare (calibration)"),
}
#: Experiments (--what-if): changes to the product's schema, applied to the bench database to measure them.
WHAT_IFS = {"no-outbox-notify":
            "outbox's NOTIFY trigger disabled (adapters/postgres/migrations/0002_outbox_notify.sql)",
            "no-entries-by-time":
            "the statements' time index dropped (adapters/postgres/migrations/0015_entries_by_time.sql)",
            "no-hash":
            "the entries' hash chain off: the API runs with bench/no_hash/sitecustomize.py (no hashing, an empty "
            "hash on every entry and chain head) and the hashes' CHECKs are dropped (migration 0017)"}
#: The directory whose sitecustomize.py switches the API's hashing off (--what-if no-hash).
NO_HASH = BENCH / "no_hash"
BALANCE = 100_000_000_000  # minor units per account: 1,000,000,000.00 USD, far more than any run moves
CLK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------- CPU


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot (/proc/stat)."""
    with open("/proc/stat") as handle:
        fields = [int(x) for x in handle.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def machine_busy(seconds: float) -> float:
    """CPU in use on the whole machine over `seconds`, in % of one core."""
    before = machine_ticks()
    time.sleep(seconds)
    after = machine_ticks()
    return 100.0 * (os.cpu_count() or 1) * (after[0] - before[0]) / max(1, after[1] - before[1])


def wait_for_quiet(limit: float, threshold: float = 25.0) -> float:
    """Wait (at most `limit` s) until other work on the machine uses < threshold % of a core; return the last %."""
    deadline = time.monotonic() + limit
    busy = machine_busy(1.0)
    if busy >= threshold:
        print(f"  (machine busy {busy:.0f}% of a core before the run: waiting up to {limit:.0f}s for quiet)",
              flush=True)
    while busy >= threshold and time.monotonic() < deadline:
        busy = machine_busy(2.0)
    return busy


class Sampler(threading.Thread):
    """Samples every process's CPU ticks during a run and splits them into API, database and other work.

    "db" is the postgres backends of the bench database plus postgres's shared processes
    (walwriter, checkpointer, autovacuum, ...); "other" is everything else on the machine that is
    not ours (another database's backends, other people's processes): a measure of noise.
    """

    def __init__(self, api_pid: int | None, database: str, interval: float = 0.5,
                 idle_pids: tuple[int, ...] = ()) -> None:
        super().__init__(daemon=True)
        self.api_pid, self.database, self.interval = api_pid, database, interval
        self.idle_pids = idle_pids  # our other server (the API during a floor run): neither measured nor noise
        self.loadgen_pid: int | None = None
        self.first: dict[int, int] = {}
        self.last: dict[int, int] = {}
        self.parent: dict[int, int] = {}
        self.cmdline: dict[int, str] = {}
        self.running = True
        self.started = time.monotonic()
        self.machine = machine_ticks()
        self._sample(initial=True)

    def _sample(self, initial: bool = False) -> None:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            stat = _proc_stat(pid)
            if stat is None:
                continue
            self.parent[pid] = stat[0]
            if pid not in self.first or self.cmdline.get(pid, "").startswith("/usr/lib/postgresql/"):
                self.first.setdefault(pid, stat[1] if initial else 0)
                try:  # a new backend shows the postmaster's command line until it has set its own
                    with open(f"/proc/{pid}/cmdline", "rb") as handle:
                        self.cmdline[pid] = handle.read().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    self.cmdline[pid] = ""
            self.last[pid] = stat[1]

    def run(self) -> None:
        while self.running:
            time.sleep(self.interval)
            self._sample()

    def stop(self) -> dict[str, float]:
        self.running = False
        self.join()
        self._sample()
        seconds = time.monotonic() - self.started
        busy, total = machine_ticks()
        api_tree = self._tree((self.api_pid,) if self.api_pid else ())
        idle_tree = self._tree(self.idle_pids)
        use = {"api": 0, "db": 0, "other": 0}
        backends = 0  # this database's backends only: not postgres's shared processes, which serve everyone
        for pid, last in self.last.items():
            ticks = last - self.first[pid]
            cmd = self.cmdline.get(pid, "")
            if pid in api_tree:
                use["api"] += ticks
            elif pid in idle_tree or pid in (os.getpid(), self.loadgen_pid):
                continue
            elif cmd.startswith("postgres: ") and (f" {self.database} " in cmd or not re.search(r"\(\d+\)", cmd)):
                use["db"] += ticks
                backends += ticks if f" {self.database} " in cmd else 0
            elif cmd.startswith("/usr/lib/postgresql/"):
                use["db"] += ticks  # the postmaster
            else:
                use["other"] += ticks
        cores = os.cpu_count() or 1
        return {
            "machine_cpu": 100.0 * cores * (busy - self.machine[0]) / max(1, total - self.machine[1]),
            **{f"{kind}_cpu": 100.0 * ticks / CLK / seconds for kind, ticks in use.items()},
            "api_seconds": use["api"] / CLK, "backend_seconds": backends / CLK,
        }


    def _tree(self, roots: tuple[int, ...]) -> set[int]:
        """The processes `roots` and all their descendants."""
        tree, frontier = set(roots), list(roots)
        while frontier:
            parent = frontier.pop()
            children = [p for p, pp in self.parent.items() if pp == parent and p not in tree]
            tree.update(children)
            frontier.extend(children)
        return tree


def _proc_stat(pid: int) -> tuple[int, int] | None:
    """(ppid, utime + stime ticks) of a live process."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            rest = handle.read().rsplit(") ", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(rest[1]), int(rest[11]) + int(rest[12])


def run_measured(argv: list[str], *, timeout: float, sampler: Sampler) -> tuple[int, str, float, float]:
    """Run a load generator; return (exit code, output, its CPU seconds, wall seconds)."""
    with tempfile.TemporaryFile() as out:
        started = time.monotonic()
        popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        sampler.loadgen_pid = popen.pid
        sampler.start()
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(popen.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                popen.kill()
                pid, status, usage = os.wait4(popen.pid, 0)
                break
            time.sleep(0.05)
        popen.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - started
        out.seek(0)
        return popen.returncode, out.read().decode(errors="replace"), usage.ru_utime + usage.ru_stime, wall


# ------------------------------------------------------------------------------------------ database


def with_database(url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


def sql(url: str, statement: str, params: tuple[Any, ...] | None = None) -> list[tuple[Any, ...]]:
    """Run one statement; a server shared with others may be out of connections for a while: wait (up to 60 s)."""
    import psycopg

    deadline = time.monotonic() + 60
    while True:
        try:
            conn = psycopg.connect(url, autocommit=True)
            break
        except psycopg.OperationalError as error:
            if "too many clients" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(1)
    with conn, conn.cursor() as cur:
        cur.execute(statement, params)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


def create_database(admin_url: str, suffix: str = "") -> tuple[str, str]:
    name = time.strftime("bench_%Y%m%d_%H%M%S_") + str(os.getpid()) + suffix
    sql(admin_url, f'CREATE DATABASE "{name}"')
    return name, with_database(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    sql(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def prepare_database(url: str, accounts: int, what_if: list[str]) -> None:
    from adapters.postgres.migrate import apply_migrations

    apply_migrations(url)
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute((PGBENCH / "setup.sql").read_text())  # type: ignore[arg-type]
        conn.execute((BENCH / "floor.sql").read_text())  # type: ignore[arg-type]
        conn.execute("SELECT bench_seed(%s, %s)", (accounts, BALANCE))
        if "no-outbox-notify" in what_if:
            conn.execute("ALTER TABLE outbox DISABLE TRIGGER outbox_inserted")
        if "no-entries-by-time" in what_if:
            conn.execute("DROP INDEX account_transactions_by_time")
        if "no-hash" in what_if:
            conn.execute("ALTER TABLE account_transactions DROP CONSTRAINT hash_is_sha256")
            conn.execute("ALTER TABLE accounts DROP CONSTRAINT last_entry_hash_is_sha256")


def server_facts(url: str) -> dict[str, str]:
    rows = sql(url, "SELECT current_setting('server_version'), current_setting('synchronous_commit'), "
                    "current_setting('shared_buffers'), current_setting('max_connections'), "
                    "current_setting('fsync')")
    version, sync, buffers, conns, fsync = rows[0]
    return {"postgres": version, "synchronous_commit": sync, "shared_buffers": buffers,
            "max_connections": conns, "fsync": fsync}


# ------------------------------------------------------------------------------------------- the API


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def api_env(args: argparse.Namespace, database_url: str, port: int, what_if: list[str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMENTS_")}
    if "no-hash" in (args.what_if if what_if is None else what_if):
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(NO_HASH), env.get("PYTHONPATH"))))
    env.update(
        PAYMENTS_DATABASE_URL=database_url, PAYMENTS_REDIS_URL=args.redis_url, PAYMENTS_SERVER_PORT=str(port),
        PAYMENTS_OBSERVABILITY_LOG_LEVEL="warning", PAYMENTS_SERVER_WORKERS=str(args.api_workers),
        PAYMENTS_RATE_LIMIT_REQUESTS_PER_SECOND="0",
        PAYMENTS_SECRETS_KEYS=base64.urlsafe_b64encode(os.urandom(32)).decode(),  # a Fernet key; no webhooks here
    )
    if args.pool_max:
        env["PAYMENTS_DATABASE_POOL_MAX"] = str(args.pool_max)
    env.update(setting.split("=", 1) for setting in getattr(args, "api_setting", []))
    return env


def create_key(env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-m", "payments", "keys", "create", "--tenant", "bench"], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip().splitlines()[-1].strip()


def start_server(env: dict[str, str], log: Path, base_url: str,
                 argv: tuple[str, ...] = ("-m", "payments", "serve")) -> subprocess.Popen[bytes]:
    """Start a server (`payments serve`, or the floor with its own argv) and wait until /health/ready says 200."""
    popen = subprocess.Popen([sys.executable, *argv], env=env, cwd=ROOT,
                             stdout=log.open("ab"), stderr=subprocess.STDOUT)
    name = " ".join(argv[-2:]) if argv[0] == "-m" else Path(argv[0]).name
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise RuntimeError(f"{name} exited early:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base_url}/health/ready", timeout=1) as response:
                if response.status == 200:
                    return popen
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    popen.kill()
    raise RuntimeError(f"{name} not ready in 60 s:\n{log.read_text(errors='replace')[-3000:]}")


def start_floor(args: argparse.Namespace, ctx: dict[str, Any]) -> None:
    """Start bench/floor.py on the bench database with the API's pool size (the same --pool-max, else the default)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMENTS_")}
    if args.pool_max:
        env["PAYMENTS_DATABASE_POOL_MAX"] = str(args.pool_max)
    ctx["floor_url"] = f"http://127.0.0.1:{port}"
    ctx["floor"] = start_server(env, ctx["tmp"] / "floor.log", ctx["floor_url"],
                                argv=(str(FLOOR), "--database-url", ctx["database_url"], "--port", str(port)))


def pgbench_accounts(count: int) -> list[str]:
    """The ids of bench_seed's accounts (bench/pgbench/setup.sql's bench_account(n)): the floor's without the API."""
    return [f"b0000000-0000-4000-8000-{n:012x}" for n in range(1, count + 1)]


def stop_server(popen: subprocess.Popen[bytes] | None) -> None:
    if popen is None or popen.poll() is not None:
        return
    popen.send_signal(signal.SIGTERM)
    try:
        popen.wait(40)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait()


async def create_accounts(base_url: str, key: str, count: int) -> list[str]:
    import httpx

    headers = {"Authorization": f"Bearer {key}"}
    ids: list[str | None] = [None] * count
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(count):
        queue.put_nowait(index)
    major, minor = divmod(BALANCE, 100)

    async def worker(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            index = queue.get_nowait()
            body = {"user_id": f"bench-{index}", "currency": "USD", "initial_balance": f"{major}.{minor:02d}"}
            response = await http.post("/api/v1/accounts", json=body)
            if response.status_code != 201:
                raise RuntimeError(f"creating an account answered {response.status_code}: {response.text}")
            ids[index] = response.json()["id"]

    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as http:
        await asyncio.gather(*(worker(http) for _ in range(8)))
    return [i for i in ids if i is not None]


# ----------------------------------------------------------------------------------- load generators


def wrk_script(accounts: list[str], hot: str | None, key: str, run: str, directory: Path) -> Path:
    destinations = [a for a in accounts if a != hot]
    prelude = ("ACCOUNTS = {" + ",".join(f'"{a}"' for a in destinations) + "}\n"
               + (f'HOT = "{hot}"\n' if hot else "HOT = nil\n") + f'API_KEY = "{key}"\nRUN = "{run}"\n')
    path = directory / f"{run}.lua"
    path.write_text(prelude + (BENCH / "transfers.lua").read_text())
    return path


def run_api_load(args: argparse.Namespace, ctx: dict[str, Any], scenario: str, clients: int,
                 duration: float, target: str = "http") -> dict[str, Any]:
    """POST /api/v1/transfers to the API (target "http") or to the floor ("floor"): same generator, same bodies."""
    server = ctx["server"] if target == "http" else ctx["floor"]
    idle = tuple(p.pid for p in (ctx["server"], ctx.get("floor")) if p is not None and p is not server)
    idle += ctx.get("idle", ())
    argv, generator = generator_argv(args, ctx, scenario, clients, duration, target)
    sampler = Sampler(server.pid, ctx["database"], idle_pids=idle)
    code, output, cpu_seconds, wall = run_measured(argv, timeout=duration + 30, sampler=sampler)
    usage = sampler.stop()
    return {**generator_result(code, output, generator, scenario, clients, target),
            "gen_cpu": 100.0 * cpu_seconds / wall, **usage}


def generator_argv(args: argparse.Namespace, ctx: dict[str, Any], scenario: str, clients: int, duration: float,
                   target: str = "http") -> tuple[list[str], str]:
    """The load generator's command line for one run (wrk, else bench/aioload.py) and its name."""
    base_url = ctx["base_url"] if target == "http" else ctx["floor_url"]
    hot = ctx["accounts"][0] if scenario == "hot" else None
    run = f"{target}-{scenario}-{clients}-{secrets.token_hex(4)}"
    if ctx["wrk"]:
        script = wrk_script(ctx["accounts"], hot, ctx["key"], run, ctx["tmp"])
        return [ctx["wrk"], "-t", str(min(args.wrk_threads, clients)), "-c", str(clients),
                "-d", f"{math.ceil(duration)}s", "--timeout", "10s", "-s", str(script), base_url], "wrk"
    port = urllib.parse.urlsplit(base_url).port
    config = {"host": "127.0.0.1", "port": port, "clients": clients, "duration": duration,
              "accounts": [a for a in ctx["accounts"] if a != hot], "hot": hot, "api_key": ctx["key"],
              "run": run}
    path = ctx["tmp"] / f"{run}.json"
    path.write_text(json.dumps(config))
    return [sys.executable, str(BENCH / "aioload.py"), str(path)], "aioload"


def generator_result(code: int, output: str, generator: str, scenario: str, clients: int,
                     target: str = "http") -> dict[str, Any]:
    """A row from the generator's `BENCH_RESULT {json}` line: rate, latency percentiles (ms), statuses, errors."""
    match = re.search(r"^BENCH_RESULT (\{.*\})$", output, re.MULTILINE)
    if code != 0 or match is None:
        raise RuntimeError(f"{generator} failed ({code}):\n{output[-3000:]}")
    data = json.loads(match.group(1))
    seconds = data["duration_us"] / 1e6
    statuses = {int(s): n for s, n in data["statuses"].items()}
    errors = {k: v for k, v in data["errors"].items() if k != "status" and v}
    return {
        "scenario": scenario, "clients": clients, "target": target,
        "label": f"{'API' if target == 'http' else 'floor (1 call)'} ({generator})",
        "rate": data["requests"] / seconds, "p50": data["p50_us"] / 1000, "p90": data["p90_us"] / 1000,
        "p99": data["p99_us"] / 1000,
        "mean": data["mean_us"] / 1000, "statuses": statuses, "errors": errors, "requests": data["requests"],
    }


def run_mixed_load(args: argparse.Namespace, ctx: dict[str, Any], clients: int,
                   duration: float) -> dict[str, dict[str, Any]]:
    """The mixed scenario: half of `clients` on one hot source account and half uniform, at the same time, each
    half from a generator process of its own (so each half's rate and percentiles are its own). Returns
    {"hot": row, "uniform": row}; the CPU split (Sampler) is over both."""
    halves = {"hot": clients // 2, "uniform": clients - clients // 2}
    sampler = Sampler(ctx["server"].pid, ctx["database"], idle_pids=ctx.get("idle", ()))
    popens: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    with contextlib.ExitStack() as files:
        outs = {side: files.enter_context(tempfile.TemporaryFile()) for side in halves}
        try:
            started = time.monotonic()
            for side, count in halves.items():
                argv, generator = generator_argv(args, ctx, side, count, duration)
                popens[side] = (subprocess.Popen(argv, stdout=outs[side], stderr=subprocess.STDOUT), generator)
            sampler.start()
            rows = {}
            for side, (popen, generator) in popens.items():
                try:
                    code = popen.wait(max(1.0, started + duration + 30 - time.monotonic()))
                except subprocess.TimeoutExpired:
                    popen.kill()
                    code = popen.wait()
                outs[side].seek(0)
                rows[side] = generator_result(code, outs[side].read().decode(errors="replace"), generator,
                                              f"mixed-{side}", halves[side])
            usage = sampler.stop()
        finally:
            for popen, _ in popens.values():
                if popen.poll() is None:
                    popen.kill()
                    popen.wait()
    for row in rows.values():
        row.update(usage)
    return rows


def mixed_rounds(args: argparse.Namespace, ctx: dict[str, Any], clients: int) -> list[dict[str, Any]]:
    """--mixed rounds: each the mixed run (hot half + uniform half together) and the uniform half alone (the same
    client count, same API, same accounts), in alternating order; one record per round with the ratio of the
    uniform half's p99 in the mix to its p99 alone (issue 12: < 2)."""
    rounds = []
    for index in range(args.mixed):
        order = ("mixed", "alone") if index % 2 == 0 else ("alone", "mixed")
        got: dict[str, Any] = {}
        for what in order:
            checkpoint(ctx["database_url"])
            if args.quiet_wait > 0:
                wait_for_quiet(args.quiet_wait)
            if what == "mixed":
                got.update(run_mixed_load(args, ctx, clients, args.duration))
            else:
                got["alone"] = run_api_load(args, ctx, "uniform", clients - clients // 2, args.duration)
        record = {"round": index + 1, "order": "-".join(order), **got,
                  "ratio": got["uniform"]["p99"] / got["alone"]["p99"] if got["alone"]["p99"] else math.inf}
        rounds.append(record)
        print(mixed_line(record), flush=True)
    return rounds


MIXED_HEADER = ("round order        hot req/s p50/p90/p99 ms     uniform req/s p50/p90/p99 ms  "
                "alone req/s p50/p90/p99 ms    p99 mixed/alone  non-201  other CPU%")


def mixed_line(record: dict[str, Any]) -> str:
    def cell(row: dict[str, Any]) -> str:
        return f"{row['rate']:6.0f} {row['p50']:5.1f}/{row['p90']:5.1f}/{row['p99']:6.1f}"

    bad = {f"{side}:{s}": n for side in ("hot", "uniform", "alone") for s, n in record[side]["statuses"].items()
           if s != 201}
    bad.update({f"{side}:{k}": v for side in ("hot", "uniform", "alone") for k, v in record[side]["errors"].items()})
    return (f"{record['round']:<5} {record['order']:<12} {cell(record['hot'])}   {cell(record['uniform'])}   "
            f"{cell(record['alone'])}   {record['ratio']:14.2f}  {bad or 'none'}  "
            f"{record['uniform']['other_cpu']:.0f}/{record['alone']['other_cpu']:.0f}")


def mixed_summary(rounds: list[dict[str, Any]], clients: int, duration: float) -> list[str]:
    ratios = [r["ratio"] for r in rounds]
    median = statistics.median(ratios)
    lines = ["", f"mixed: {clients // 2} clients on one hot source + {clients - clients // 2} uniform at the same "
             f"time, against the {clients - clients // 2} uniform clients alone; {len(rounds)} round(s), "
             f"{duration:g} s per run", MIXED_HEADER, *(mixed_line(r) for r in rounds),
             f"MIXED {'MET' if median < 2 else 'NOT MET'}: the uniform half's p99 in the mix / alone: median "
             f"{median:.2f} (runs {', '.join(f'{x:.2f}' for x in ratios)}); target < 2"]
    return lines


def run_pgbench(args: argparse.Namespace, ctx: dict[str, Any], script: str, scenario: str, clients: int,
                duration: float) -> dict[str, Any]:
    filename, label = SCRIPTS[script]
    logdir = Path(tempfile.mkdtemp(dir=ctx["tmp"], prefix=f"pgb-{script}-{scenario}-{clients}-"))
    argv = [ctx["pgbench"], "-n", "-M", "prepared", "-f", str(PGBENCH / filename),
            "-D", f"accounts={args.accounts}", "-D", f"hot={int(scenario == 'hot')}",
            "-c", str(clients), "-j", str(min(2, clients)), "-T", f"{max(1, round(duration))}",
            "--log", "--log-prefix", str(logdir / "log"), ctx["database_url"]]
    idle = tuple(p.pid for p in (ctx["server"], ctx.get("floor")) if p is not None)
    sampler = Sampler(None, ctx["database"], idle_pids=idle)
    code, output, cpu_seconds, wall = run_measured(argv, timeout=duration + 60, sampler=sampler)
    usage = sampler.stop()
    tps = re.search(r"^tps = ([\d.]+)", output, re.MULTILINE)
    if tps is None:
        raise RuntimeError(f"pgbench failed ({code}):\n{output[-3000:]}")
    latencies = []
    for log in logdir.iterdir():
        for line in log.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[2].isdigit():
                latencies.append(int(fields[2]))
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))] / 1000 if latencies else 0.0

    failed = re.search(r"^number of failed transactions: (\d+)", output, re.MULTILINE)
    aborted = len(re.findall(r"aborted", output))
    errors = {}
    if failed and int(failed.group(1)):
        errors["failed"] = int(failed.group(1))
    if aborted:
        errors["aborted clients"] = aborted
    shutil.rmtree(logdir, ignore_errors=True)
    return {
        "scenario": scenario, "clients": clients, "target": script, "label": label,
        "rate": float(tps.group(1)), "p50": pct(50), "p99": pct(99),
        "mean": sum(latencies) / len(latencies) / 1000 if latencies else 0.0,
        "statuses": {}, "errors": errors, "gen_cpu": 100.0 * cpu_seconds / wall, **usage,
    }


def measure(args: argparse.Namespace, database_url: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """One run on a quiet machine: CHECKPOINT, wait for quiet, run; again (at most --retries times) if
    other processes took more than --noise % of a core meanwhile. Keeps the least disturbed attempt."""
    best: dict[str, Any] | None = None
    for attempt in range(1 + args.retries):
        checkpoint(database_url)
        wait_for_quiet(args.quiet_wait)
        row = run()
        row["attempts"] = attempt + 1
        if best is None or row["other_cpu"] < best["other_cpu"]:
            best = row
        if row["other_cpu"] <= args.noise:
            break
        print(f"  (other processes used {row['other_cpu']:.0f}% of a core during the run"
              f"{': running it again' if attempt < args.retries else ''})", flush=True)
    assert best is not None
    print(render_text([best]).splitlines()[-1], flush=True)
    return best


def checkpoint(url: str) -> None:
    """Start every run from the same place: fresh statistics, no dead rows, no dirty buffers.

    VACUUM ANALYZE does what autovacuum would between runs (this server may run with
    autovacuum=off): without it the planner keeps believing that `payments` is as empty as it
    was after the migrations, and every foreign-key check against it becomes a sequential scan
    (see docs/benchmarks.md). It also invalidates the plans cached in the API's connections.
    """
    sql(url, "VACUUM ANALYZE")
    sql(url, "CHECKPOINT")


# ----------------------------------------------------------------------------------------- profiling


def profile(args: argparse.Namespace, ctx: dict[str, Any]) -> None:
    """py-spy on the server during an extra uniform run (not one of the measured runs)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("py-spy not found (pip install py-spy); skipping the profile", file=sys.stderr)
        return
    out = Path(args.profile_out)
    seconds = max(1, math.ceil(args.profile))
    argv = [spy, "record", "--format", "raw", "--rate", "200", "-d", str(seconds), "-o", str(out),
            "--pid", str(ctx["server"].pid)]
    if args.api_workers > 1:
        argv.append("--subprocesses")
    if args.profile_native:
        argv.append("--native")
    spy_log = ctx["tmp"] / "py-spy.log"
    spy_proc = subprocess.Popen(argv, stdout=spy_log.open("wb"), stderr=subprocess.STDOUT)
    time.sleep(0.5)
    result = run_api_load(args, ctx, "uniform", args.profile_clients, seconds + 1.5)
    try:
        spy_proc.wait(seconds + 30)
    except subprocess.TimeoutExpired:
        spy_proc.kill()
    print(f"\nprofile: py-spy {seconds}s at {args.profile_clients} clients (uniform), "
          f"{result['rate']:.0f} req/s while sampled; raw stacks in {out}")
    if out.exists():
        print(summarize_profile(out, seconds * 200 * max(1, args.api_workers)))
        print(profile_steps(out))
    else:
        print(f"py-spy wrote nothing:\n{spy_log.read_text(errors='replace')[-2000:]}")


def summarize_profile(path: Path, possible: int, top: int = 25) -> str:
    """Self and inclusive time per function from py-spy's collapsed stacks."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        leaf = frames[-1]
        own[leaf] = own.get(leaf, 0) + count
        for frame in set(frames[1:] if frames and frames[0].startswith("process") else frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
    if not total:
        return "(no samples)"
    lines = [f"{total} samples with the GIL-holding thread active (of {possible} possible: "
             f"{100.0 * total / max(1, possible):.0f}% busy)", "", "self %  function (file:line)"]
    for frame, count in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{100.0 * count / total:6.1f}  {frame}")
    lines += ["", "total % function (file:line)"]
    for frame, count in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{100.0 * count / total:6.1f}  {frame}")
    return "\n".join(lines)


#: The steps of a transfer, each matched by (function, file) in a sampled stack: a sample counts for every step
#: one of whose frames it holds (inclusive; steps nest, e.g. the claim's SQL is in both "idempotency claim" and
#: "asyncpg"). A function matches py-spy's qualified name or its last part ("" matches any); a file matches as a
#: path suffix, or anywhere when it ends in "/". py-spy sees one asyncio task's frames at a time: the
#: request's task (Sanic, middleware, auth, the handler up to io.execute's asyncio.shield) and the shielded
#: task that runs the unit of work (run_idempotent), so no step holds the whole of a request.
PROFILE_STEPS: list[tuple[str, list[tuple[str, str]]]] = [
    ("request task: auth wrapper (key check, body, handler up to the shield)", [("wrapper", "app/http/auth.py")]),
    ("  request body: read_json, parse_body", [("read_json", "app/http/io.py"), ("parse_body", "app/http/bodies.py")]),
    ("  idempotency fingerprint (idempotent_request)", [("idempotent_request", "app/http/io.py")]),
    ("middleware: _start, _finish (request id, metrics, log bind, span)", [("_start", "app/http/app.py"),
                                                                          ("_finish", "app/http/app.py")]),
    ("unit-of-work task (run_idempotent), in all", [("run_idempotent", "core/usecases/idempotency.py")]),
    ("  enter: turns, pool acquire, BEGIN", [("__aenter__", "adapters/postgres/uow.py")]),
    ("    of which BEGIN (Transaction.start)", [("Transaction.start", "asyncpg/transaction.py")]),
    ("  idempotency claim (advisory lock + lookup)", [("claim", "adapters/postgres/idempotency.py")]),
    ("  make_transfer", [("make_transfer", "core/usecases/transfers.py")]),
    ("    of which accounts.lock (SELECT ... FOR UPDATE)", [("lock", "adapters/postgres/accounts.py")]),
    ("    of which ledger.post (entries, hashes, ids)", [("post", "core/ledger.py")]),
    ("  render the response (payment view, JSON)", [("render", "app/http/routes/payments.py"),
                                                    ("", "core/views.py")]),
    ("  exit: flush, the one write, COMMIT, release", [("__aexit__", "adapters/postgres/uow.py")]),
    ("    of which _commit (flush, compose, write, COMMIT)", [("_commit", "adapters/postgres/uow.py")]),
    ("    of which COMMIT (Transaction.commit)", [("Transaction.commit", "asyncpg/transaction.py")]),
    ("ids (core/ids.py Uuid7)", [("", "core/ids.py")]),
    ("hash chain (core/hash_chain.py)", [("", "core/hash_chain.py")]),
    ("logging (loguru)", [("", "loguru/")]),
    ("metrics (prometheus_client)", [("", "prometheus_client/")]),
    ("tracing (opentelemetry)", [("", "opentelemetry/")]),
    ("json module", [("", "json/")]),
    ("asyncpg, all (encode, send, decode; pool)", [("", "asyncpg/")]),
    ("no frame of ours: Sanic's HTTP, the event loop", []),
]
OURS = ("app/", "core/", "adapters/")


def _matches(name: str, file: str, function: str, suffix: str) -> bool:
    named = not function or name == function or name.endswith("." + function)
    return named and (file.endswith(suffix) or (suffix.endswith("/") and suffix in file))


def profile_steps(path: Path) -> str:
    """Inclusive share of the samples per step of a transfer (PROFILE_STEPS)."""
    total = 0
    counts = dict.fromkeys((label for label, _ in PROFILE_STEPS), 0)
    frame = re.compile(r"^(.*) \((.*?):\d+\)$")
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [(m.group(1), m.group(2)) for m in map(frame.match, stack.split(";")) if m]
        for label, patterns in PROFILE_STEPS:
            if not patterns:
                hit = not any(f.startswith(OURS) or f"/{OURS[0]}" in f or f"/{OURS[1]}" in f or f"/{OURS[2]}" in f
                              for _, f in frames)
            else:
                hit = any(_matches(name, f, n, p) for name, f in frames for n, p in patterns)
            if hit:
                counts[label] += count
    if not total:
        return ""
    lines = ["", "inclusive % of the samples, by step of a transfer (steps nest: see PROFILE_STEPS)"]
    lines += [f"{100.0 * n / total:6.1f}  {label}" for label, n in counts.items()]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- reports


def status_text(row: dict[str, Any]) -> str:
    parts = [f"{s}:{n}" for s, n in sorted(row["statuses"].items())]
    parts += [f"{k}:{v}" for k, v in row["errors"].items()]
    return " ".join(parts) or "-"


def ratio_text(row: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    if row["target"] == "http":
        return ""
    api = next((r for r in rows if r["target"] == "http" and r["scenario"] == row["scenario"]
                and r["clients"] == row["clients"]), None)
    return f"{api['rate'] / row['rate']:.2f}" if api and row["rate"] else ""


COLUMNS = ("scenario", "clients", "target", "rate/s", "p50 ms", "p99 ms", "avg ms", "API/this",
           "statuses / errors", "gen CPU%", "app CPU%", "DB CPU%", "other CPU%", "app ms/req", "DB ms/tx")
#: Targets served by one of our HTTP processes (the API, the floor), whose CPU is the "app" columns.
SERVERS = {"http", "floor"}


def table_rows(rows: list[dict[str, Any]]) -> list[list[str]]:
    out = []
    for r in rows:
        api = r["target"] in SERVERS
        rate = max(r["rate"], 1e-9)
        out.append([
            r["scenario"], str(r["clients"]), r["label"], f"{r['rate']:.0f}", f"{r['p50']:.1f}", f"{r['p99']:.1f}",
            f"{r['mean']:.1f}", ratio_text(r, rows), status_text(r), f"{r['gen_cpu']:.0f}",
            f"{r['api_cpu']:.0f}" if api else "-", f"{r['db_cpu']:.0f}", f"{r['other_cpu']:.0f}",
            f"{10 * r['api_cpu'] / rate:.2f}" if api else "-", f"{10 * r['db_cpu'] / rate:.2f}",
        ])
    return out


def render_text(rows: list[dict[str, Any]]) -> str:
    body = table_rows(rows)
    widths = [max(len(c), *(len(r[i]) for r in body)) for i, c in enumerate(COLUMNS)]
    line = "  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True))
    out = [line, "-" * len(line)]
    previous = None
    for r in body:
        if previous is not None and (r[0], r[1]) != previous:
            out.append("")
        previous = (r[0], r[1])
        out.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    return "\n".join(out)


def render_markdown(rows: list[dict[str, Any]]) -> str:
    out = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    out += ["| " + " | ".join(r) + " |" for r in table_rows(rows)]
    floor = floor_rows(rows)
    if floor:
        out += ["", "| " + " | ".join(FLOOR_COLUMNS) + " |", "|" + "---|" * len(FLOOR_COLUMNS)]
        out += ["| " + " | ".join(r) + " |" for r in floor]
    return "\n".join(out)


FLOOR_COLUMNS = ("scenario", "clients", "floor rate/s", "floor p50 ms", "floor p99 ms", "API rate/s", "API p50 ms",
                 "API p99 ms", "API/floor")


def floor_rows(rows: list[dict[str, Any]]) -> list[list[str]]:
    """The API against the floor, one line per scenario and client count that ran both."""
    out = []
    for floor in (r for r in rows if r["target"] == "floor"):
        api = next((r for r in rows if r["target"] == "http" and r["scenario"] == floor["scenario"]
                    and r["clients"] == floor["clients"]), None)
        if api is None:
            continue
        out.append([floor["scenario"], str(floor["clients"]), f"{floor['rate']:.0f}", f"{floor['p50']:.1f}",
                    f"{floor['p99']:.1f}", f"{api['rate']:.0f}", f"{api['p50']:.1f}", f"{api['p99']:.1f}",
                    f"{api['rate'] / floor['rate']:.2f}" if floor["rate"] else ""])
    return out


def render_floor(rows: list[dict[str, Any]]) -> str:
    body = floor_rows(rows)
    if not body:
        return ""
    widths = [max(len(c), *(len(r[i]) for r in body)) for i, c in enumerate(FLOOR_COLUMNS)]
    out = ["  ".join(c.ljust(w) for c, w in zip(FLOOR_COLUMNS, widths, strict=True))]
    out.append("-" * len(out[0]))
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(out)


def verdicts(rows: list[dict[str, Any]], clients: int = 32) -> list[str]:
    """The issue's targets at 32 clients."""

    def find(scenario: str, target: str) -> dict[str, Any] | None:
        return next((r for r in rows if r["scenario"] == scenario and r["clients"] == clients
                     and r["target"] == target), None)

    out = []
    api, floor = find("uniform", "http"), find("uniform", "floor")
    if api and floor:
        share = api["rate"] / floor["rate"] if floor["rate"] else 0.0
        out.append(f"uniform, {clients} clients: API {api['rate']:.0f}/s = {share:.2f} x the floor's "
                   f"{floor['rate']:.0f}/s (issue 12 target >= 0.5: {'MET' if share >= 0.5 else 'NOT MET'}); "
                   f"p99 {api['p99']:.1f} ms (target < 50 ms: {'MET' if api['p99'] < 50 else 'NOT MET'}; "
                   f"the floor's p99 {floor['p99']:.1f} ms)")
    api, seven = find("uniform", "http"), find("uniform", "7")
    if api and seven:
        share = api["rate"] / seven["rate"]
        out.append(f"uniform, {clients} clients: API {api['rate']:.0f}/s = {share:.0%} of pgbench 7-statement "
                   f"{seven['rate']:.0f} tps (target >= 50%: {'MET' if share >= 0.5 else 'NOT MET'}); "
                   f"p99 {api['p99']:.1f} ms (target < 100 ms: {'MET' if api['p99'] < 100 else 'NOT MET'})")
    api, seven = find("hot", "http"), find("hot", "7")
    if api and seven:
        unexpected = {s: n for s, n in api["statuses"].items() if s >= 400 and s != 422}
        unexpected_text = ", ".join(f"{s}:{n}" for s, n in unexpected.items())
        out.append(f"hot, {clients} clients: API {api['rate']:.0f}/s vs pgbench 7-statement hot "
                   f"{seven['rate']:.0f} tps "
                   f"(target >=: {'MET' if api['rate'] >= seven['rate'] else 'NOT MET'}); errors other than 422: "
                   f"{unexpected_text or 'none'}{' (' + str(api['errors']) + ')' if api['errors'] else ''}")
    return out


def report_api_log(log: Path) -> None:
    """Summarize what the server logged (at --log-level warning: its warnings and errors)."""
    if not log.exists() or not log.stat().st_size:
        return
    counts: dict[str, int] = {}
    for line in log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
            key = f"{record.get('level')}: {record.get('message')}"
            if record.get("exception"):
                key += " | " + record["exception"].strip().splitlines()[-1][:200]
            key = re.sub(r" at 0x[0-9a-f]+", "", key)
        except (ValueError, AttributeError):
            key = re.sub(r"^\S+ \S+ \| ", "", line)[:200]
        counts[key] = counts.get(key, 0) + 1
    print(f"\nthe API's log ({sum(counts.values())} lines; it runs at log level warning):")
    for key, count in sorted(counts.items(), key=lambda kv: -kv[1])[:10]:
        print(f"  {count:6d} x {key}")


# --------------------------------------------------------------------------------- alternated pairs


def quantile(values: list[float], q: float) -> float:
    """The q-quantile of `values` (linear interpolation between the closest ranks)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def cpu_per_transfer(row: dict[str, Any]) -> tuple[float, float]:
    """(API, database backends) CPU milliseconds per completed transfer (201) of a run."""
    done = max(1, row["statuses"].get(201, 0))
    return 1000.0 * row["api_seconds"] / done, 1000.0 * row["backend_seconds"] / done


def pair_summary(pairs: list[dict[str, Any]], scenario: str) -> list[str]:
    """The median and spread, over the pairs of one scenario, of product ÷ what-if: throughput and CPU per transfer
    (API + this database's backends; each apart); and the pooled CPU (all CPU ÷ all transfers of each side)."""
    mine = [p for p in pairs if p["scenario"] == scenario]
    if not mine:
        return []

    def spread(values: list[float]) -> str:
        return (f"median {statistics.median(values):.3f} (quartiles {quantile(values, 0.25):.3f}-"
                f"{quantile(values, 0.75):.3f}, range {min(values):.3f}-{max(values):.3f})")

    rate = [p["product"]["rate"] / p["what_if"]["rate"] for p in mine]
    cpu = [p["product_cpu"] / p["what_if_cpu"] for p in mine]
    api = [p["product_ms"][0] / p["what_if_ms"][0] for p in mine]
    db = [p["product_ms"][1] / p["what_if_ms"][1] for p in mine]

    def pooled(side: str) -> float:
        seconds = sum(p[side]["api_seconds"] + p[side]["backend_seconds"] for p in mine)
        return 1000.0 * seconds / max(1, sum(p[side]["statuses"].get(201, 0) for p in mine))

    pooled_ratio = pooled("product") / pooled("what_if")
    cost_rate, cost_cpu = 1 - statistics.median(rate), statistics.median(cpu) - 1
    return [
        f"{scenario}, {len(mine)} pairs, product / what-if:",
        f"  throughput         {spread(rate)}: the product runs at {1 - cost_rate:.1%} of the what-if's rate",
        f"  CPU per transfer   {spread(cpu)}: API + this database's backends",
        f"    API alone        {spread(api)}",
        f"    backends alone   {spread(db)}",
        f"  pooled CPU per transfer: {pooled('product'):.3f} ms against {pooled('what_if'):.3f} ms "
        f"= {pooled_ratio:.3f}",
        f"  => the product costs {cost_cpu:+.1%} CPU per transfer (median pair) and {cost_rate:+.1%} of throughput "
        f"(median pair) over the what-if ({', '.join(pairs[0]['what_ifs'])})",
    ]


def load_into(got: dict[str, dict[str, Any]], side: str, args: argparse.Namespace, ctx: dict[str, Any],
              scenario: str, clients: int) -> None:
    """A run of --pairs --together, in a thread of its own: its row goes into got[side]."""
    got[side] = run_api_load(args, ctx, scenario, clients, args.duration)


def run_pairs(args: argparse.Namespace, clients: int, scenarios: list[str], wrk: str | None) -> int:
    """--pairs N: the product and the product with the --what-if experiments side by side, each on a database and
    an API server of its own, measured in N rounds of alternated short runs (round 1: product then what-if; round 2:
    what-if then product; ...), so that the machine's drift weighs on both sides alike. Each pair gives two ratios:
    throughput, which the other work on a shared machine disturbs, and CPU per completed transfer, summed over the
    API's processes and this database's PostgreSQL backends (/proc/<pid>/stat), which it disturbs far less."""
    tmp = Path(tempfile.mkdtemp(prefix="payments-bench-pairs-"))
    sides: dict[str, dict[str, Any]] = {}
    pairs: list[dict[str, Any]] = []
    try:
        for side, what_if in (("product", []), ("what_if", list(args.what_if))):
            name, url = create_database(args.database_url, "_" + side.replace("_", ""))
            ctx: dict[str, Any] = {"database_url": url, "database": name, "tmp": tmp, "wrk": wrk, "pgbench": None,
                                   "server": None, "what_if": what_if}
            sides[side] = ctx
            print(f"{side}: database {name}{' with ' + ', '.join(what_if) if what_if else ''}: migrating", flush=True)
            prepare_database(url, 1, what_if)
            port = free_port()
            env = api_env(args, url, port, what_if)
            ctx["base_url"] = f"http://127.0.0.1:{port}"
            ctx["key"] = create_key(env)
            ctx["server"] = start_server(env, tmp / f"api-{side}.log", ctx["base_url"])
            ctx["accounts"] = asyncio.run(create_accounts(ctx["base_url"], ctx["key"], args.accounts))
            print(f"  API on {ctx['base_url']} (pid {ctx['server'].pid}), {len(ctx['accounts'])} accounts", flush=True)
        sides["product"]["idle"] = (sides["what_if"]["server"].pid,)
        sides["what_if"]["idle"] = (sides["product"]["server"].pid,)
        facts = server_facts(sides["product"]["database_url"])
        if args.warmup > 0:
            for scenario in scenarios:
                for ctx in sides.values():
                    run_api_load(args, ctx, scenario, clients, args.warmup)
        print(f"\n{args.pairs} rounds x {', '.join(scenarios)}, {clients} clients, {args.duration:g} s per run"
              f"{' (both sides at once)' if args.together else ''}; "
              f"CPU in ms per completed transfer (API + this database's backends)\n", flush=True)
        print("round scenario  order   product: rate/s  CPU ms (api+db)   what-if: rate/s  CPU ms (api+db)   "
              "rate ratio  CPU ratio  other %", flush=True)
        for index in range(args.pairs):
            order = ("product", "what_if") if index % 2 == 0 else ("what_if", "product")
            for scenario in scenarios:
                got: dict[str, dict[str, Any]] = {}
                if args.together:  # both at once, each with its own load generator: the same machine for both
                    for side in order:
                        checkpoint(sides[side]["database_url"])
                    threads = [threading.Thread(target=load_into, args=(got, side, args, sides[side], scenario,
                                                                        clients)) for side in order]
                    for thread in threads:
                        thread.start()
                    for thread in threads:
                        thread.join()
                    if set(got) != set(order):
                        raise RuntimeError("a load run failed (its error is above)")
                for side in order:
                    if not args.together:
                        checkpoint(sides[side]["database_url"])
                        if args.quiet_wait > 0:
                            wait_for_quiet(args.quiet_wait)
                        got[side] = run_api_load(args, sides[side], scenario, clients, args.duration)
                    bad = {s: n for s, n in got[side]["statuses"].items() if s != 201}
                    if bad or got[side]["errors"]:
                        print(f"  WARNING: {side} answered {bad} {got[side]['errors']}", flush=True)
                pair = {"round": index + 1, "scenario": scenario, "order": "-".join(order),
                        "what_ifs": list(args.what_if), "product": got["product"], "what_if": got["what_if"],
                        "product_ms": cpu_per_transfer(got["product"]), "what_if_ms": cpu_per_transfer(got["what_if"])}
                pair["product_cpu"], pair["what_if_cpu"] = sum(pair["product_ms"]), sum(pair["what_if_ms"])
                pairs.append(pair)
                p, w = got["product"], got["what_if"]
                print(f"{index + 1:<5} {scenario:<9} {'p-w' if order[0] == 'product' else 'w-p'}   "
                      f"{p['rate']:14.0f}  {pair['product_cpu']:.3f} ({pair['product_ms'][0]:.3f}+"
                      f"{pair['product_ms'][1]:.3f})  {w['rate']:15.0f}  {pair['what_if_cpu']:.3f} "
                      f"({pair['what_if_ms'][0]:.3f}+{pair['what_if_ms'][1]:.3f})   {p['rate'] / w['rate']:10.3f}  "
                      f"{pair['product_cpu'] / pair['what_if_cpu']:9.3f}  {p['other_cpu']:.0f}/{w['other_cpu']:.0f}",
                      flush=True)
    finally:
        for ctx in sides.values():
            stop_server(ctx["server"])
        for side, ctx in sides.items():
            report_api_log(tmp / f"api-{side}.log")
            if args.keep_database:
                print(f"kept database {ctx['database']}: {ctx['database_url']}")
            else:
                drop_database(args.database_url, ctx["database"])
        shutil.rmtree(tmp, ignore_errors=True)
    load = os.getloadavg()
    print(f"\n{os.cpu_count()} CPUs, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the end; PostgreSQL "
          f"{facts['postgres']}, synchronous_commit={facts['synchronous_commit']}, fsync={facts['fsync']}; "
          f"API workers={args.api_workers}; load generator {'wrk' if wrk else 'bench/aioload.py'}; "
          f"WHAT-IF: {', '.join(args.what_if)}\n")
    for scenario in scenarios:
        print("\n".join(pair_summary(pairs, scenario)))
    if args.json:
        Path(args.json).write_text(json.dumps({"facts": facts, "args": vars(args), "pairs": pairs}, indent=1,
                                              default=str))
    return 0


# ---------------------------------------------------------------------------------------------- main


def pgbench_selection(scripts: list[str]) -> tuple[str | None, list[str], str | None]:
    """(pgbench's path, the --pgbench-scripts to run, the line saying what was skipped and why): without pgbench
    on PATH its rows are skipped, and the API and floor rows still run."""
    if not scripts:
        return None, [], None
    pgbench = shutil.which("pgbench")
    if pgbench is None:
        names = ", ".join(SCRIPTS[s][1] for s in scripts)
        return None, [], (f"pgbench not found on PATH: skipping the pgbench rows ({names}); the API and floor rows "
                          "still run. For them, install the PostgreSQL client tools "
                          "(Debian/Ubuntu: apt-get install postgresql-client; macOS: brew install libpq), or pass "
                          "--pgbench-scripts none to skip them quietly")
    return pgbench, scripts, None


def planned_targets(args: argparse.Namespace, scripts: list[str]) -> list[str]:
    """What each scenario and client count measures, in order: the API (`http`), the floor, each pgbench script."""
    return [target for target, off in (("http", args.no_api), ("floor", args.no_floor)) if not off] + scripts


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgresql://root@127.0.0.1:5432/postgres",
                        help="server to benchmark; a fresh database is created on it (default: %(default)s)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run (default: %(default)s)")
    parser.add_argument("--clients", default="1,8,32,64", help="concurrent clients, comma-separated")
    parser.add_argument("--scenarios", default="uniform,hot", help="uniform and/or hot")
    parser.add_argument("--accounts", type=int, default=1000, help="accounts created (API and pgbench each)")
    parser.add_argument("--api-workers", type=int, default=1, help="PAYMENTS_SERVER_WORKERS")
    parser.add_argument("--api-setting", action="append", default=[], metavar="PAYMENTS_NAME=VALUE",
                        help="a setting of the API's process (repeatable), e.g. PAYMENTS_DATABASE_GROUP_TRANSACTIONS=0")
    parser.add_argument("--pool-max", type=int, default=0,
                        help="PAYMENTS_DATABASE_POOL_MAX (default: the product's default)")
    parser.add_argument("--pgbench-scripts", default="7,fn,api",
                        help=f"comma-separated, from {', '.join(SCRIPTS)}; 'none' for no pgbench")
    parser.add_argument("--no-api", action="store_true", help="no API: the floor (on the pgbench accounts) and pgbench")
    parser.add_argument("--no-floor", action="store_true",
                        help="do not run the floor (bench/floor.py, the same transfer as one call from a bare app)")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "aioload"), default="auto",
                        help="auto: wrk if installed, else bench/aioload.py")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--quiet-wait", type=float, default=60.0,
                        help="before each run, wait at most this long for other work on the machine to stop")
    parser.add_argument("--noise", type=float, default=15.0,
                        help="a run during which other processes used more than this %% of a core is disturbed")
    parser.add_argument("--retries", type=int, default=2, help="runs again a disturbed run at most this many times")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of unrecorded load before the runs")
    parser.add_argument("--profile", type=float, default=0.0,
                        help="after the runs, py-spy the server for this many seconds under load")
    parser.add_argument("--profile-clients", type=int, default=32)
    parser.add_argument("--profile-native", action="store_true", help="py-spy --native: show C extension frames")
    parser.add_argument("--profile-out", default="/tmp/payments-bench-profile.txt")
    parser.add_argument("--what-if", default="", type=lambda v: [c.strip() for c in v.split(",") if c.strip()],
                        help="comma-separated experiments: " + "; ".join(
                            f"{k}: {v}" for k, v in WHAT_IFS.items()))
    parser.add_argument("--pairs", type=int, default=0,
                        help="with --what-if: the product against the what-if in this many rounds of alternated "
                             "runs (API only, the first --clients count), each side on a database and an API of "
                             "its own; reports the median ratios of throughput and of CPU per transfer")
    parser.add_argument("--together", action="store_true",
                        help="with --pairs: load both sides at the same time (each with --clients clients) rather "
                             "than one after the other, so that both see the same machine")
    parser.add_argument("--mixed", type=int, default=0, metavar="ROUNDS",
                        help="the mixed scenario instead of --scenarios, API only: in each of ROUNDS rounds, half "
                             "of the first --clients count on one hot source account and half uniform at the same "
                             "time (each half's rate and percentiles reported separately), and the uniform half "
                             "alone; reports the uniform half's p99 in the mix / alone (issue 12: < 2)")
    parser.add_argument("--api-log", help="keep the server's log (stdout and stderr) in this file")
    parser.add_argument("--markdown", help="also write the results table as Markdown to this file")
    parser.add_argument("--json", help="also write the raw results as JSON to this file")
    parser.add_argument("--keep-database", action="store_true", help="do not drop the bench database at the end")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    clients = [int(c) for c in args.clients.split(",") if c.strip()]
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    scripts = [] if args.pgbench_scripts == "none" else [s.strip() for s in args.pgbench_scripts.split(",")]
    for change in args.what_if:
        if change not in WHAT_IFS:
            sys.exit(f"unknown --what-if {change!r}")
    for s in scripts:
        if s not in SCRIPTS:
            sys.exit(f"unknown pgbench script {s!r}; choose from {', '.join(SCRIPTS)}")
    wrk = shutil.which("wrk") if args.loadgen in {"auto", "wrk"} else None
    if args.loadgen == "wrk" and not wrk:
        sys.exit("wrk is not installed (apt-get install -y wrk), or use --loadgen aioload")
    if args.mixed:
        args.no_floor, scripts = True, []
    if args.pairs:
        if not args.what_if:
            sys.exit("--pairs compares the product with --what-if experiments: name at least one")
        return run_pairs(args, clients[0], scenarios, wrk)
    pgbench, scripts, skipped = pgbench_selection(scripts)
    if skipped:
        print(skipped, flush=True)
    plan = planned_targets(args, scripts)
    if not plan:
        sys.exit("nothing to measure: --no-api and --no-floor, and no pgbench script to run")

    name, database_url = create_database(args.database_url)
    tmp = Path(tempfile.mkdtemp(prefix="payments-bench-"))
    ctx: dict[str, Any] = {"database_url": database_url, "database": name, "tmp": tmp, "wrk": wrk,
                           "pgbench": pgbench, "server": None}
    rows: list[dict[str, Any]] = []
    mixed: list[dict[str, Any]] = []
    try:
        print(f"database {name}: migrating and seeding {args.accounts} pgbench accounts", flush=True)
        prepare_database(database_url, args.accounts, args.what_if)
        facts = server_facts(database_url)
        if not args.no_api:
            port = free_port()
            env = api_env(args, database_url, port)
            ctx["base_url"] = f"http://127.0.0.1:{port}"
            ctx["key"] = create_key(env)
            ctx["server"] = start_server(env, tmp / "api.log", ctx["base_url"])
            started = time.monotonic()
            ctx["accounts"] = asyncio.run(create_accounts(ctx["base_url"], ctx["key"], args.accounts))
            print(f"API on {ctx['base_url']} (pid {ctx['server'].pid}, {args.api_workers} worker(s)); "
                  f"{len(ctx['accounts'])} accounts created over HTTP in {time.monotonic() - started:.1f}s; "
                  f"load generator: {'wrk' if wrk else 'bench/aioload.py'}", flush=True)
        else:
            ctx["accounts"], ctx["key"] = pgbench_accounts(args.accounts), "none"
        if not args.no_floor:
            start_floor(args, ctx)
            print(f"floor on {ctx['floor_url']} (pid {ctx['floor'].pid}, bench/floor.py: one process, "
                  f"one SQL call per transfer)", flush=True)
        if args.warmup > 0:
            checkpoint(database_url)
            for target in [t for t, off in (("http", args.no_api), ("floor", args.no_floor)) if not off]:
                run_api_load(args, ctx, "uniform", max(clients), args.warmup, target)
        for scenario in [] if args.mixed else scenarios:
            for count in clients:
                for target in plan:
                    if target in SERVERS:
                        rows.append(measure(args, database_url, lambda s=scenario, c=count, t=target: run_api_load(
                            args, ctx, s, c, args.duration, t)))
                        continue
                    script = target
                    try:
                        rows.append(measure(args, database_url, lambda p=script, s=scenario, c=count: run_pgbench(
                            args, ctx, p, s, c, args.duration)))
                    except RuntimeError as error:  # e.g. "too many clients" on a server shared with others
                        print(f"WARNING: pgbench {script} {scenario}/{count} failed, row left out: "
                              f"{str(error).strip().splitlines()[-1]}", flush=True)
        if args.mixed and not args.no_api:
            mixed = mixed_rounds(args, ctx, clients[0])
        if args.profile > 0 and not args.no_api:
            profile(args, ctx)
    finally:
        stop_server(ctx.get("floor"))
        stop_server(ctx["server"])
        report_api_log(tmp / "api.log")
        floor_log = tmp / "floor.log"
        if floor_log.exists() and floor_log.stat().st_size:
            print(f"\nthe floor's log (errors only):\n{floor_log.read_text(errors='replace')[-2000:]}")
        if args.api_log and (tmp / "api.log").exists():
            shutil.copy(tmp / "api.log", args.api_log)
        if args.keep_database:
            print(f"kept database {name}: {database_url}")
        else:
            drop_database(args.database_url, name)
        shutil.rmtree(tmp, ignore_errors=True)

    if args.mixed:
        load = os.getloadavg()
        print(f"\n{os.cpu_count()} CPUs, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the end; "
              f"PostgreSQL {facts['postgres']}; API workers={args.api_workers}; load generator "
              f"{'wrk' if wrk else 'bench/aioload.py'} (one process per half)")
        print("\n".join(mixed_summary(mixed, clients[0], args.duration)))
        if args.json:
            Path(args.json).write_text(json.dumps({"facts": facts, "args": vars(args), "mixed": mixed}, indent=1,
                                                  default=str))
        return 0
    print(f"\n{os.cpu_count()} CPUs; PostgreSQL {facts['postgres']}, synchronous_commit={facts['synchronous_commit']}, "
          f"fsync={facts['fsync']}, shared_buffers={facts['shared_buffers']}; API workers={args.api_workers}; "
          f"{args.duration:g}s per run" + (f"; WHAT-IF: {', '.join(args.what_if)}" if args.what_if else "") + "\n")
    print(render_text(rows))
    print("\nAPI/this: the API's rate divided by this row's rate (same scenario and clients).")
    print("CPU columns in % of one core over the run: gen = the load generator (wrk or pgbench), app = the server's\n"
          "processes (the API's, or the floor's on floor rows), DB = postgres (this database's backends and shared\n"
          "processes), other = everything else on the machine (noise: rows with other > --noise are suspect).\n"
          "app ms/req and DB ms/tx: CPU per request.")
    if floor_rows(rows):
        print("\nThe API against the floor (bench/floor.py: the same transfer as one SQL call, bare Sanic app):\n")
        print(render_floor(rows))
    for r in rows:
        if r["other_cpu"] > args.noise:
            print(f"WARNING: other processes used {r['other_cpu']:.0f}% of a core during {r['scenario']}/"
                  f"{r['clients']}/{r['label']}: that row is disturbed")
    warnings = [r for r in rows if r["target"] in SERVERS and r["gen_cpu"] > 40]
    for r in warnings:
        print(f"WARNING: the load generator used {r['gen_cpu']:.0f}% of a core in {r['scenario']}/{r['clients']}: "
              f"it competes with the server ({r['label']}) for the 2 cores; treat that row as a lower bound")
    for line in verdicts(rows):
        print(line)
    if args.markdown:
        Path(args.markdown).write_text(render_markdown(rows) + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps({"facts": facts, "args": vars(args), "rows": rows}, indent=1,
                                              default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

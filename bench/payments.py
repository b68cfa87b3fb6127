"""End-to-end benchmark of external payments: POST /api/v1/payments until the payment is `completed`.

    .venv/bin/python bench/payments.py                          # 0 and 50 ms, 1 and 2 workers, 15 s each, 16 in flight
    .venv/bin/python bench/payments.py --duration 15 --markdown /tmp/payments.md
    .venv/bin/python bench/payments.py --clients 8              # 8 creators POSTing back to back
    .venv/bin/python bench/payments.py --rate 30 --latencies 50 --workers 2     # open loop at 30 payments/s
    .venv/bin/python bench/payments.py --latencies '' --raw-clients 4           # the raw baseline alone

For each (mock provider latency, worker process count) it:
  1. creates a fresh database on --database-url and applies the migrations, and takes a private Redis
     database (the first empty one of --redis-dbs; flushed when the run ends);
  2. starts `payments mock-providers` (PAYMENTS_MOCK_LATENCY), N `payments worker` processes and
     `payments serve`, creates an API key (`payments keys create --tenant bench`) and --accounts funded
     accounts over HTTP;
  3. drives POST /api/v1/payments (external payments of 1.00 USD from random accounts, stripe and paypal
     alternately, a fresh Idempotency-Key each) for --warmup seconds (not recorded), waits for them to
     finish, VACUUM ANALYZE + CHECKPOINT, then for --duration seconds from an asyncio client (bench/rawhttp.py):
       --in-flight N  N creators, each waiting until the poller has seen its payment final before the
                      next POST (closed loop end to end: a steady state at N payments in flight; default 16);
       --clients N    N creators, each POSTing its next payment as soon as the previous POST answered
                      (closed loop on the POST only; the pipeline may fall behind: the backlog is reported);
       --rate R       R POSTs per second whatever happens (open loop, at most --max-outstanding in flight);
  4. watches completions by polling the database (one SELECT of `id, status, completed_at` of the oldest
     <= 500 unfinished payments every --poll-ms; every 10th poll also counts this database's backends
     waiting for a lock / idle in a transaction / active in pg_stat_activity), then waits (at most
     --drain-timeout s) for every created payment to finish; runs `payments ledger check`; a run during
     which other processes used more than --noise % of a core is run again (at most --retries times);
  5. reports created/s, completed/s, end-to-end p50/p90/p99/max, POST p50/p99, failures, the median
     time in each stage, and the CPU of each process group (from /proc).
Then it runs the raw baseline: the three transactions of a payment (creation, `processing`,
completion) as the product's own SQL statements from an asyncpg loop, without HTTP, Redis, Dramatiq
or a provider, on another fresh database, and prints the pipeline's completed/s as a ratio of it.

Clocks: end-to-end time = the payment's `completed_at` (written by the worker from the host's wall
clock, `datetime.now(UTC)`) minus the wall-clock time (`time.time()`) at which this script started the
POST. Every process runs on this host, so both read the same clock; no database time is involved.
`completed_at` is taken before the completion transaction locks the clearing account and commits, so
the poller sees a payment completed a little later: "poll lag" (seen - completed_at) shows by how much.
Every load run stops by itself after --duration s; every wait is bounded; every process started is
stopped (SIGTERM, then SIGKILL) and every database dropped, even on errors or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import importlib
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
base: Any = importlib.import_module("bench.run")  # bench/run.py: database, server and CPU helpers
RawHttp: Any = importlib.import_module("bench.rawhttp").RawHttp  # the load's HTTP client (bench/rawhttp.py)

CLK = os.sysconf("SC_CLK_TCK")
AMOUNT = 100  # minor units: every payment is 1.00 USD
PROVIDERS = ("stripe", "paypal")
FINAL = ("completed", "failed", "cancelled")


# ---------------------------------------------------------------------------------------------- CPU


class CpuSampler(threading.Thread):
    """CPU ticks of every process on the machine, split by who they belong to.

    Groups: the process trees of the API, the workers and the mock provider; `db` (this database's
    postgres backends plus postgres's shared processes, as in bench/run.py); `redis` (redis-server);
    `gen` (this script: load generator, poller and sampler); `other` (everything else: noise).
    """

    def __init__(self, roots: dict[str, list[int]], database: str, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.roots, self.database, self.interval = roots, database, interval
        self.first: dict[int, int] = {}
        self.last: dict[int, int] = {}
        self.parent: dict[int, int] = {}
        self.cmdline: dict[int, str] = {}
        self.running = True
        self.started = time.monotonic()
        self.machine = base.machine_ticks()
        self._sample(initial=True)

    def _sample(self, initial: bool = False) -> None:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            stat = base._proc_stat(pid)
            if stat is None:
                continue
            self.parent[pid] = stat[0]
            if pid not in self.first or self.cmdline.get(pid, "").startswith("/usr/lib/postgresql/"):
                self.first.setdefault(pid, stat[1] if initial else 0)
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as handle:
                        self.cmdline[pid] = handle.read().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    self.cmdline[pid] = ""
            self.last[pid] = stat[1]

    def run(self) -> None:
        while self.running:
            time.sleep(self.interval)
            self._sample()

    def _tree(self, roots: list[int]) -> set[int]:
        tree, frontier = set(roots), list(roots)
        while frontier:
            parent = frontier.pop()
            children = [p for p, pp in self.parent.items() if pp == parent and p not in tree]
            tree.update(children)
            frontier.extend(children)
        return tree

    def stop(self) -> dict[str, float]:
        self.running = False
        self.join()
        self._sample()
        seconds = max(1e-6, time.monotonic() - self.started)
        busy, total = base.machine_ticks()
        trees = {name: self._tree(pids) for name, pids in self.roots.items()}
        use = dict.fromkeys([*self.roots, "db", "redis", "gen", "other"], 0)
        others: Counter[str] = Counter()
        for pid, last in self.last.items():
            ticks = last - self.first[pid]
            cmd = self.cmdline.get(pid, "")
            group = next((name for name, tree in trees.items() if pid in tree), None)
            if group is None:
                if pid == os.getpid():
                    group = "gen"
                elif (cmd.startswith("postgres: ") and (f" {self.database} " in cmd
                                                        or not re.search(r"\(\d+\)", cmd))) \
                        or cmd.startswith("/usr/lib/postgresql/"):
                    group = "db"
                elif cmd.startswith("redis-server"):
                    group = "redis"
                else:
                    group = "other"
                    others[cmd[:60] or f"pid {pid}"] += ticks
            use[group] += ticks
        cores = os.cpu_count() or 1
        self.others = [f"{100.0 * t / CLK / seconds:.0f}% {c}" for c, t in others.most_common(3) if t]
        return {"seconds": seconds,
                "machine": 100.0 * cores * (busy - self.machine[0]) / max(1, total - self.machine[1]),
                **{name: 100.0 * ticks / CLK / seconds for name, ticks in use.items()}}


# --------------------------------------------------------------------------------------------- Redis


def claim_redis_db(url: str, candidates: list[int]) -> tuple[str, int]:
    """The first empty Redis database among `candidates`, marked as ours; never one holding others' keys."""
    import redis

    for db in candidates:
        client = redis.Redis.from_url(url, db=db)
        try:
            if client.dbsize() == 0 and client.set("payments-bench:owner", str(os.getpid()), nx=True):
                return _redis_url(url, db), db
        finally:
            client.close()
    raise RuntimeError(f"no empty Redis database among {candidates}: pass --redis-dbs with free indexes")


def release_redis_db(url: str, db: int) -> None:
    """FLUSHDB, if the database is still marked as ours."""
    import redis

    client = redis.Redis.from_url(url, db=db)
    try:
        if client.get("payments-bench:owner") == str(os.getpid()).encode():
            client.flushdb()
    finally:
        client.close()


def _redis_url(url: str, db: int) -> str:
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{db}"))


def redis_version(url: str) -> str:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return str(client.info("server").get("redis_version", "?"))
    finally:
        client.close()


# ------------------------------------------------------------------------------------------ processes


@dataclass
class Stack:
    """The processes of one run; `stop()` ends every one of them."""

    tmp: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, command: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        """`payments <command>` with `env`."""
        return self.spawn(name, [sys.executable, "-m", "payments", command], env)

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Any command, logging to <tmp>/<name>.log (`env` None: this process's environment)."""
        log = (self.tmp / f"{name}.log").open("ab")
        popen = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs[name] = popen
        return popen

    def roots(self, *others: str) -> dict[str, list[int]]:
        """The CpuSampler's groups: the API, the worker processes together, then each of `others`."""
        return {"api": [self.procs["api"].pid],
                "worker": [p.pid for n, p in self.procs.items() if n.startswith("worker")],
                **{name: [self.procs[name].pid] for name in others}}

    def check(self) -> None:
        for name, popen in self.procs.items():
            if popen.poll() is not None:
                raise RuntimeError(f"{name} exited with {popen.returncode}:\n{self.log_tail(name)}")

    def log_tail(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> list[str]:
        """SIGTERM everything (the API first, the workers, the mock last); SIGKILL what is left after 30 s."""
        problems = []
        for popen in self.procs.values():
            if popen.poll() is None:
                popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for name, popen in self.procs.items():
            try:
                popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()
                problems.append(f"{name} (pid {popen.pid}) did not stop within 30 s of SIGTERM: killed")
        return problems


def wait_http(url: str, stack: Stack, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.check()
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready in {timeout:.0f} s")


def wait_workers(redis_url: str, count: int, stack: Stack, timeout: float = 60.0) -> None:
    """Until `count` Dramatiq brokers have registered a heartbeat (each worker process is consuming)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            stack.check()
            if client.zcard("dramatiq:__heartbeats__") >= count:
                return
            time.sleep(0.2)
    finally:
        client.close()
    raise RuntimeError(f"{count} worker(s) not consuming in {timeout:.0f} s")


def summarize_log(path: Path) -> list[str]:
    """One line per distinct message a process logged (they run at log level warning)."""
    if not path.exists():
        return []
    counts: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            key = f"{record.get('level')}: {record.get('message')}"
            if record.get("exception"):
                key += " | " + str(record["exception"]).strip().splitlines()[-1][:200]
        except (ValueError, AttributeError):
            key = line[:200]
        counts[re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<id>", key)] += 1
    return [f"{n:6d} x {key}" for key, n in counts.most_common(8)]


# ---------------------------------------------------------------------- one run's resources (also webhooks.py)


@dataclass
class Case:
    """What one run holds: its folder, its database, its Redis database and its processes."""

    tmp: Path
    database: str
    database_url: str
    redis_url: str
    redis_db: int
    stack: Stack
    problems: list[str] = field(default_factory=list)
    logs: dict[str, list[str]] = field(default_factory=dict)  # process -> summarize_log, once stopped
    # PAYMENTS_SECRETS_KEYS of its processes: a Fernet key (32 random bytes, URL-safe base64)
    secrets_key: str = field(default_factory=lambda: base64.urlsafe_b64encode(os.urandom(32)).decode())


@contextlib.contextmanager
def case(args: argparse.Namespace, tmp_root: Path, prefix: str) -> Iterator[Case]:
    """A folder under `tmp_root`, a fresh migrated database and a claimed Redis database for one run; on the
    way out, even on errors or Ctrl-C, every process stopped (its log summarized in `logs`), the database
    dropped, the Redis database released and the folder removed (kept, and its path printed, with --keep-logs)."""
    tmp = Path(tempfile.mkdtemp(dir=tmp_root, prefix=prefix))
    name, database_url = base.create_database(args.database_url)
    redis_url, redis_db = claim_redis_db(args.redis_url, args.redis_dbs)
    run = Case(tmp, name, database_url, redis_url, redis_db, Stack(tmp))
    try:
        from adapters.postgres.migrate import apply_migrations

        apply_migrations(database_url)
        yield run
    finally:
        run.problems += run.stack.stop()
        run.logs = {n: summarize_log(tmp / f"{n}.log") for n in run.stack.procs}
        base.drop_database(args.database_url, name)
        release_redis_db(args.redis_url, redis_db)
        if args.keep_logs:
            print(f"   logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def case_env(run: Case, api_port: int, worker_concurrency: int, **extra: str) -> dict[str, str]:
    """The environment of the run's `payments` processes: no PAYMENTS_* of ours, its database and Redis, one
    API process on `api_port`, warnings only, no rate limit, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMENTS_")}
    env.update(
        PAYMENTS_DATABASE_URL=run.database_url, PAYMENTS_REDIS_URL=run.redis_url, PAYMENTS_SERVER_PORT=str(api_port),
        PAYMENTS_SERVER_WORKERS="1", PAYMENTS_OBSERVABILITY_LOG_LEVEL="warning",
        PAYMENTS_RATE_LIMIT_REQUESTS_PER_SECOND="0", PAYMENTS_SERVER_SHUTDOWN_TIMEOUT="10s",
        PAYMENTS_WORKER_METRICS_PORT="0",  # several workers (and other people's) on one host
        PAYMENTS_SECRETS_KEYS=run.secrets_key,  # one per case: every process reads what the others encrypted
        **extra,
    )
    if worker_concurrency:
        env["PAYMENTS_WORKER_CONCURRENCY"] = str(worker_concurrency)
    return env


def start_workers_and_api(run: Case, env: dict[str, str], workers: int, api_port: int) -> str:
    """`workers` worker processes (until each consumes), then `payments serve` (until ready): its base URL."""
    for index in range(workers):
        run.stack.start(f"worker{index + 1}", "worker", env)
    wait_workers(run.redis_url, workers, run.stack)
    run.stack.start("api", "serve", env)
    base_url = f"http://127.0.0.1:{api_port}"
    wait_http(f"{base_url}/health/ready", run.stack, "payments serve")
    return base_url


def note_dead_letters(database_url: str, row: dict[str, Any]) -> None:
    dead = base.sql(database_url, "SELECT count(*) FROM dead_letters")[0][0]
    if dead:
        row["failures"]["dead letters"] = dead


def finish_row(row: dict[str, Any], run: Case) -> dict[str, Any]:
    """The run's problems and the processes' log summaries into `row`, the latter printed."""
    row["logs"] = {n: lines for n, lines in run.logs.items() if lines}
    row["problems"] = run.problems
    for proc_name, lines in row["logs"].items():
        print(f"   {proc_name} logged (level warning and above):")
        for line in lines:
            print(f"     {line}")
    return row


# ------------------------------------------------------------------------------------- the load


@dataclass
class Post:
    """One POST of a load: when it started (wall and monotonic clocks) and how it ended (also webhooks.py's)."""

    wall: float
    start: float
    end: float = 0.0
    answered: float = 0.0  # wall clock when the answer had been read
    status: int = 0
    error: str = ""
    done: asyncio.Future[None] | None = None  # in-flight mode: resolved once the pipeline is through with it


@dataclass
class Sent(Post):
    """One POST /api/v1/payments, and its payment's fate."""

    payment_id: str | None = None
    seen: float = 0.0  # monotonic time at which the poller saw it final


async def send(http: Any, sent: Post, path: str, expect: int, **request: Any) -> Any:
    """POST `path` and note in `sent` when and how it ended: the answer's JSON if its status is `expect`, else
    None (the answer's text, or the transport error, in `sent.error`)."""
    try:
        answer = await http.post(path, **request)
        sent.end, sent.answered, sent.status = time.monotonic(), time.time(), answer.status_code
        if answer.status_code == expect:
            return answer.json()
        sent.error = answer.text[:300]
    except Exception as error:  # a transport error is a result, not a crash of the bench
        sent.end, sent.error = time.monotonic(), f"{type(error).__name__}: {error}"[:300]
    return None


async def wait_done(sent: Post, deadline: float) -> None:
    """In-flight mode: until `sent.done` is resolved, at the latest `deadline` (monotonic)."""
    if sent.done is not None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(sent.done), timeout=max(0.0, deadline - time.monotonic()))


@dataclass
class Load:
    accounts: list[str]
    key: str
    sent: list[Sent] = field(default_factory=list)
    outstanding: dict[str, Sent] = field(default_factory=dict)  # POSTed, not yet seen final (oldest first)
    skipped: int = 0  # open loop: ticks not sent because --max-outstanding POSTs were in flight
    lag: float = 0.0  # open loop: the generator's worst delay behind schedule, s
    counter: int = 0
    activity: list[tuple[int, int, int]] = field(default_factory=list)  # (lock waits, idle in tx, active)


async def wal_mark(conn: Any) -> tuple[float, float]:
    """(the cluster's WAL bytes so far, now): see `wal_rate`."""
    return float(await conn.fetchval("SELECT wal_bytes FROM pg_stat_wal")), time.monotonic()


async def wal_rate(conn: Any, mark: tuple[float, float]) -> float:
    """The cluster's WAL MB/s since `mark`, ours included. The server is shared: other databases'
    writes compete for the same WAL flushes and disks (CPU samples do not show that)."""
    now = await wal_mark(conn)
    return (now[0] - mark[0]) / max(1e-6, now[1] - mark[1]) / 1e6


async def connect(url: str) -> Any:
    """An asyncpg connection, retried (for at most 60 s) while the server is full (it is shared)."""
    import asyncpg

    deadline = time.monotonic() + 60
    while True:
        try:
            return await asyncpg.connect(url)
        except (asyncpg.TooManyConnectionsError, asyncpg.CannotConnectNowError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def post_payment(http: Any, load: Load, *, wait: bool = False, deadline: float = 0.0) -> None:
    load.counter += 1
    body = {"payment_type": "external_payment", "source_account_id": random.choice(load.accounts),
            "amount": f"{AMOUNT // 100}.{AMOUNT % 100:02d}", "currency": "USD",
            "provider": PROVIDERS[load.counter % 2]}
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    sent = Sent(wall=time.time(), start=time.monotonic())
    load.sent.append(sent)
    answer = await send(http, sent, "/api/v1/payments", 202, json=body, headers=headers)
    if answer is None:
        return
    sent.payment_id = answer["id"]
    if wait:
        sent.done = asyncio.get_running_loop().create_future()
    load.outstanding[sent.payment_id] = sent
    await wait_done(sent, deadline)


PostOne = Callable[..., Awaitable[None]]  # post_payment(http, load, *, wait=False, deadline=0.0) and the like


async def drive(http: Any, load: Any, mode: str, value: float, seconds: float, max_outstanding: int,
                post: PostOne | None = None) -> None:
    """POST for `seconds`, then return (requests still in flight are awaited, bounded by the client timeout).

    `post(http, load, wait=..., deadline=...)` sends one (post_payment by default); `load` has `skipped` and
    `lag`. rate: `value` POSTs per second; clients / in-flight: `value` loops, in-flight waiting for `done`."""
    post = post or post_payment
    deadline = time.monotonic() + seconds
    if mode == "rate":
        tasks: set[asyncio.Task[None]] = set()
        started, index = time.monotonic(), 0
        while (due := started + index / value) < deadline:
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                load.lag = max(load.lag, -delay)
            index += 1
            if len(tasks) >= max_outstanding:
                load.skipped += 1
                continue
            task = asyncio.create_task(post(http, load))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
        return

    async def creator() -> None:
        while time.monotonic() < deadline:
            await post(http, load, wait=mode == "in-flight", deadline=deadline)

    await asyncio.gather(*(creator() for _ in range(int(value))))


ACTIVITY = """SELECT count(*) FILTER (WHERE wait_event_type = 'Lock') AS lock_waits,
       count(*) FILTER (WHERE state = 'idle in transaction') AS idle_in_tx,
       count(*) FILTER (WHERE state = 'active') AS active
FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"""


async def poll(conn: Any, load: Load, stop: asyncio.Event, interval: float) -> None:
    """Mark payments final as the database shows them; returns when stopped and nothing is outstanding.

    Every 10th tick, while the load runs, also samples pg_stat_activity: how many of this database's
    backends wait for a lock (row locks: the clearing and settlement accounts) and how many sit idle in
    a transaction (holding their locks while their client, a Python process, gets round to them)."""
    tick = 0
    while True:
        tick += 1
        if tick % 10 == 0 and not stop.is_set():
            load.activity.append(tuple(await conn.fetchrow(ACTIVITY)))
        if load.outstanding:
            ids = list(islice(load.outstanding, 500))
            rows = await conn.fetch("SELECT id::text, status, completed_at FROM payments WHERE id = ANY($1::uuid[])"
                                    " AND status NOT IN ('pending', 'processing')", ids)
            now = time.monotonic()
            for row in rows:
                sent = load.outstanding.pop(row["id"], None)
                if sent is not None:
                    sent.seen = now
                    if sent.done is not None and not sent.done.done():
                        sent.done.set_result(None)
        if stop.is_set() and not load.outstanding:
            return
        await asyncio.sleep(interval)


async def run_load(args: argparse.Namespace, ctx: dict[str, Any], seconds: float, drain_timeout: float,
                   sampler_roots: dict[str, list[int]] | None) -> dict[str, Any]:
    """One load run and its drain; the raw per-payment data and the CPU split."""
    load = Load(accounts=ctx["accounts"], key=ctx["key"])
    conn = await connect(ctx["database_url"])
    sampler = None
    try:
        # not httpx: its connection pool cost 62 % of this process's CPU, on the cores the pipeline runs on
        async with RawHttp(ctx["base_url"], timeout=30, headers={"Authorization": f"Bearer {ctx['key']}"}) as http:
            stop = asyncio.Event()
            poller = asyncio.create_task(poll(conn, load, stop, args.poll_ms / 1000))
            if sampler_roots is not None:
                sampler = CpuSampler(sampler_roots, ctx["database"])
                sampler.start()
            wal = await wal_mark(conn)
            load_start = time.time()
            await drive(http, load, args.mode, args.load_value, seconds, args.max_outstanding)
            load_end = time.time()
            stop.set()
            drained = True
            try:
                await asyncio.wait_for(asyncio.shield(poller), timeout=drain_timeout)
            except TimeoutError:
                drained = False
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller
            drain_end = time.time()
            usage = sampler.stop() if sampler else {}
            others = sampler.others if sampler else []
            wal_mb = await wal_rate(conn, wal)
            sampler = None
        ids = [s.payment_id for s in load.sent if s.payment_id]
        rows = await conn.fetch("""
            SELECT p.id::text, p.status, p.created_at, p.completed_at, p.attempts, p.next_attempt_at,
                   p.failure_reason, o.published_at,
                   (SELECT e.created_at FROM payment_events e
                     WHERE e.payment_id = p.id AND e.type = 'payment.processing') AS processing_at
            FROM payments p LEFT JOIN outbox o ON o.aggregate_id = p.id AND o.topic = 'payment.created'
            WHERE p.id = ANY($1::uuid[])""", ids)
    finally:
        if sampler is not None:
            sampler.stop()
        await conn.close()
    return {"load": load, "rows": {r["id"]: r for r in rows}, "load_start": load_start, "load_end": load_end,
            "drain_end": drain_end, "drained": drained, "usage": usage, "others": others,
            "wal_mb": wal_mb}


# ------------------------------------------------------------------------------------- statistics


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(len(ordered) * p / 100) - 1))]


def summarize(result: dict[str, Any], latency: int, workers: int, args: argparse.Namespace) -> dict[str, Any]:
    load: Load = result["load"]
    rows: dict[str, Any] = result["rows"]
    first = min((s.wall for s in load.sent), default=result["load_start"])
    accepted = [s for s in load.sent if s.payment_id]
    statuses = Counter(str(s.status) if s.status else s.error.split(":")[0] for s in load.sent)
    e2e, api, relay, pickup, work, lag = [], [], [], [], [], []
    completed_at: list[float] = []
    fates: Counter[str] = Counter()
    stuck: list[str] = []
    for s in accepted:
        row = rows.get(s.payment_id or "")
        status = row["status"] if row else "missing"
        fates[status] += 1
        if status not in FINAL:
            stuck.append(f"{s.payment_id} {status} attempts={row['attempts'] if row else '?'} "
                         f"next_attempt_at={row['next_attempt_at'] if row else '?'}")
        if row is None or status != "completed":
            continue
        done = row["completed_at"].timestamp()
        completed_at.append(done)
        e2e.append(1000 * (done - s.wall))
        api.append(1000 * (row["created_at"].timestamp() - s.wall))
        if row["processing_at"] is not None and row["published_at"] is not None:
            relay.append(1000 * (row["published_at"].timestamp() - row["created_at"].timestamp()))
            pickup.append(1000 * (row["processing_at"].timestamp() - row["published_at"].timestamp()))
            work.append(1000 * (done - row["processing_at"].timestamp()))
        if s.seen:
            lag.append(1000 * (s.seen - s.start) - 1000 * (done - s.wall))
    post_ms = [1000 * (s.end - s.start) for s in load.sent if s.end]
    load_seconds = max(1e-6, max((s.wall + s.end - s.start for s in load.sent), default=first) - first)
    window = max(1e-6, (max(completed_at) if completed_at else first) - first)
    in_load = sum(1 for t in completed_at if t <= result["load_end"])
    failures = {k: v for k, v in statuses.items() if k != "202"}
    failures.update({f"payment {k}": v for k, v in fates.items() if k != "completed"})
    if load.skipped:
        failures["not sent (max outstanding)"] = load.skipped
    return {
        "latency": latency, "workers": workers, "mode": args.mode_label,
        "posted": len(load.sent), "accepted": len(accepted), "completed": fates["completed"],
        "created_rate": len(accepted) / load_seconds, "completed_rate": fates["completed"] / window,
        "completed_in_load_rate": in_load / load_seconds,
        "backlog": len(accepted) - in_load, "drain": max(0.0, (max(completed_at) if completed_at else 0)
                                                       - result["load_end"]),
        "e2e": {p: pct(e2e, p) for p in (50, 90, 99, 100)}, "post": {p: pct(post_ms, p) for p in (50, 99)},
        "stages": {name: (pct(v, 50), pct(v, 99))
                   for name, v in (("api", api), ("relay", relay), ("pickup", pickup), ("work", work))},
        "poll_lag": (pct(lag, 50), pct(lag, 99)), "negative_api": sum(1 for v in api if v < 0),
        "failures": failures, "stuck": stuck, "drained": result["drained"], "usage": result["usage"],
        "others": result["others"], "wal_mb": result["wal_mb"],
        "lag": load.lag,
        "activity": tuple(sum(a[i] for a in load.activity) / max(1, len(load.activity)) for i in range(3)),
    }


# ------------------------------------------------------------------------------------ one pipeline run


def pipeline_run(args: argparse.Namespace, latency: int, workers: int, tmp_root: Path) -> dict[str, Any]:
    with case(args, tmp_root, f"lat{latency}-w{workers}-") as run:
        stack, database_url = run.stack, run.database_url
        api_port, mock_port = base.free_port(), base.free_port()
        env = case_env(run, api_port, args.worker_concurrency, PAYMENTS_MOCK_PORT=str(mock_port),
                       PAYMENTS_MOCK_LATENCY=f"{latency}ms")
        key = base.create_key(env)
        stack.start("mock", "mock-providers", env)
        wait_http(f"http://127.0.0.1:{mock_port}/health", stack, "payments mock-providers")
        base_url = start_workers_and_api(run, env, workers, api_port)
        accounts = asyncio.run(base.create_accounts(base_url, key, args.accounts))
        ctx = {"database_url": database_url, "database": run.database, "base_url": base_url, "key": key,
               "accounts": accounts}
        print(f"\n== mock latency {latency} ms, {workers} worker process(es): database {run.database}, "
              f"Redis db {run.redis_db}, {len(accounts)} accounts", flush=True)
        if args.warmup > 0:
            warm = asyncio.run(run_load(args, ctx, args.warmup, args.drain_timeout, None))
            print(f"   warm-up: {len(warm['load'].sent)} POSTs, drained={warm['drained']}", flush=True)
        roots = stack.roots("mock")
        row: dict[str, Any] = {}
        for attempt in range(1 + args.retries):
            base.checkpoint(database_url)
            stack.check()
            base.wait_for_quiet(args.quiet_wait)
            result = asyncio.run(run_load(args, ctx, args.duration, args.drain_timeout, roots))
            stack.check()
            candidate = summarize(result, latency, workers, args)
            candidate["attempts"] = attempt + 1
            candidate["runs"] = attempt + 1
            if row:
                row["runs"] = attempt + 1
            if not row or candidate["usage"]["other"] < row["usage"]["other"] or not candidate["drained"]:
                row = candidate
            if candidate["usage"]["other"] <= args.noise or not candidate["drained"]:
                break  # a run that did not drain is reported as it is, never replaced by a luckier one
            print(f"   (other processes used {candidate['usage']['other']:.0f}% of a core during the run: "
                  f"{', '.join(candidate['others'])}{'; running it again' if attempt < args.retries else ''})",
                  flush=True)
        check = subprocess.run([sys.executable, "-m", "payments", "ledger", "check"], env=env, cwd=ROOT,
                               capture_output=True, text=True, timeout=120, check=False)
        row["ledger"] = "ok" if check.returncode == 0 else f"DRIFT: {check.stdout.strip()[-500:]}"
        note_dead_letters(database_url, row)
        print(render_text([row]).splitlines()[-1], flush=True)
    return finish_row(row, run)


# ----------------------------------------------------------------------------------- the raw baseline


def raw_sql() -> dict[str, Any]:
    """The statements the API and the worker send for one external payment (adapters/postgres/*.py)."""
    from adapters.postgres import accounts, idempotency, ledger, outbox, payments, rows
    from core.accounts import SYSTEM_SHARDS
    from core.hash_chain import entry_hash
    from core.idempotency import IdempotentRequest

    return {"entry_hash": entry_hash, "shards": SYSTEM_SHARDS, "insert_arrays": rows.insert_arrays,
            "update_entities": rows.update_entities, "compose": rows.compose,
            "lock_id": lambda tenant, key, fp: idempotency.lock_id(IdempotentRequest(tenant_id=tenant, key=key,
                                                                                       fingerprint=fp)),
            "claim": idempotency.CLAIM, "lock_accounts": accounts.LOCK, "lock_systems": accounts.LOCK_SYSTEMS,
            "lock_payment": payments.LOCK, "update_payment": payments.UPDATE,
            "payments": (payments.COLUMNS, payments.TYPES), "events": (payments.EVENT_COLUMNS, payments.EVENT_TYPES),
            "entries": (ledger.COLUMNS, ledger.TYPES), "outbox": (outbox.COLUMNS, outbox.TYPES),
            "keys": (idempotency.KEY_COLUMNS, idempotency.KEY_TYPES)}


def payment_view(pid: uuid.UUID, source: uuid.UUID, provider: str, status: str, at: datetime,
                 completed: datetime | None) -> dict[str, Any]:
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"
    return {"id": str(pid), "payment_type": "external_payment", "status": status, "source_account_id": str(source),
            "destination_account_id": None, "amount": "1.00", "currency": "USD", "provider": provider,
            "provider_reference": "pi_raw" if completed else None, "refunded_amount": "0.00",
            "failure_reason": None, "description": None, "metadata": {}, "created_at": stamp, "updated_at": stamp,
            "completed_at": stamp if completed else None}


def snapshot(status: str, at: datetime, completed: bool) -> dict[str, Any]:
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"
    return {"status": status, "refunded_amount": "0.00", "provider_reference": "pi_raw" if completed else None,
            "failure_reason": None, "updated_at": stamp, "completed_at": stamp if completed else None}


async def raw_payment(conn: Any, q: dict[str, Any], tenant: uuid.UUID, source: uuid.UUID, provider: str) -> None:
    """Transaction 1 (POST): idempotency claim, lock source and clearing, one composed write (two account
    updates, payment, event, two entries, outbox, idempotency record), COMMIT. Transaction 2 (worker
    `_begin`): lock the payment, UPDATE it to processing with its event and outbox row. Transaction 3
    (worker `_finish`): lock the payment, clearing and settlement, one composed write. 16 round trips."""
    compose = q["compose"]

    def insert(table: str, what: str, rows: list[Any]) -> tuple[str, list[Any]]:
        """As the unit of work writes a table: one array per column."""
        return q["insert_arrays"](table, *q[what], rows)

    def update_accounts(rows: list[tuple[Any, ...]]) -> tuple[str, list[Any]]:
        [fragment] = q["update_entities"]("accounts", updated, [dict(zip(names, row, strict=True)) for row in rows],
                                          dict.get)
        return fragment

    key = uuid.uuid4().hex
    pid, now = uuid.uuid4(), datetime.now(UTC)
    correlation = uuid.uuid4().hex
    updated = (("id", "uuid"), ("balance", "bigint"), ("version", "bigint"), ("updated_at", "timestamptz"),
               ("last_entry_hash", "bytea"))
    names = [name for name, _ in updated]

    def leg(row: Any, posting: uuid.UUID, amount: int, at: datetime) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """The account's update and its entry, the entry chained from the account's last hash as core.ledger
        does it."""
        entry_id, kind, balance = uuid.uuid4(), "credit" if amount > 0 else "debit", row["balance"] + amount
        digest = q["entry_hash"](row["last_entry_hash"], id=entry_id, account_id=row["id"], payment_id=pid,
                                 type=kind, amount=amount, balance_after=balance, currency="USD", created_at=at)
        return ((row["id"], balance, row["version"] + 1, at, digest),
                (entry_id, tenant, row["id"], posting, pid, None, row["version"] + 1, kind, amount, balance, "USD",
                 at, digest))

    fingerprint = hashlib.sha256(key.encode()).digest()
    async with conn.transaction():
        await conn.fetchrow(q["claim"], q["lock_id"](tenant, key, fingerprint), tenant, key)
        (src,) = await conn.fetch(q["lock_accounts"], tenant, [source])
        clearing = await conn.fetchrow(q["lock_systems"], tenant, ["clearing"], "USD", [random.randrange(q["shards"])])
        posting = uuid.uuid4()
        view = payment_view(pid, source, provider, "pending", now, None)
        body = json.dumps(view).encode()
        (src_update, src_entry), (clearing_update, clearing_entry) = (
            leg(src, posting, -AMOUNT, now), leg(clearing, posting, AMOUNT, now))
        sql, params = compose([
            update_accounts([src_update, clearing_update]),
            insert("payments", "payments", [[
                pid, tenant, "external_payment", "pending", source, None, AMOUNT, "USD", provider, None, 0, None, None,
                None, {}, 0, 0, None, correlation, now, now, None]]),
            insert("payment_events", "events", [[
                uuid.uuid4(), tenant, pid, 0, "payment.created", snapshot("pending", now, False), correlation, now]]),
            insert("account_transactions", "entries", [src_entry, clearing_entry]),
            insert("outbox", "outbox", [
                (uuid.uuid4(), tenant, "payment.created", pid, view, correlation, now, {})]),
            insert("idempotency_keys", "keys",
                   [(tenant, key, fingerprint, 202, body, False, now, now + timedelta(hours=24))]),
        ])
        await conn.execute(sql, *params)
    now = datetime.now(UTC)
    async with conn.transaction():
        await conn.fetchrow(q["lock_payment"], tenant, pid)
        sql, params = compose([
            (q["update_payment"], [pid, 0, "processing", None, 0, None, 1, 0, None, now, None, None]),
            insert("payment_events", "events", [[
                uuid.uuid4(), tenant, pid, 1, "payment.processing", snapshot("processing", now, False), correlation,
                now]]),
            insert("outbox", "outbox", [
                (uuid.uuid4(), tenant, "payment.processing", pid,
                 payment_view(pid, source, provider, "processing", now, None), correlation, now, {})]),
        ])
        await conn.execute(sql, *params)
    now = datetime.now(UTC)
    async with conn.transaction():
        await conn.fetchrow(q["lock_payment"], tenant, pid)
        settled, clearing = await conn.fetch(q["lock_systems"], tenant, [f"settlement:{provider}", "clearing"], "USD",
                                             [random.randrange(q["shards"]), random.randrange(q["shards"])])
        posting = uuid.uuid4()
        (clearing_update, clearing_entry), (settled_update, settled_entry) = (
            leg(clearing, posting, -AMOUNT, now), leg(settled, posting, AMOUNT, now))
        sql, params = compose([
            update_accounts([clearing_update, settled_update]),
            (q["update_payment"], [pid, 1, "completed", "pi_raw", 0, None, 2, 1, None, now, now, None]),
            insert("payment_events", "events", [[
                uuid.uuid4(), tenant, pid, 2, "payment.completed", snapshot("completed", now, True), correlation,
                now]]),
            insert("account_transactions", "entries", [clearing_entry, settled_entry]),
            insert("outbox", "outbox", [
                (uuid.uuid4(), tenant, "payment.completed", pid,
                 payment_view(pid, source, provider, "completed", now, now), correlation, now, {})]),
        ])
        await conn.execute(sql, *params)


RAW_SEED = """
INSERT INTO tenants (id, name, created_at) VALUES ($1::uuid, 'raw-' || $1::uuid::text, now());
INSERT INTO accounts (id, tenant_id, kind, currency, shard, balance, version, created_at, updated_at)
SELECT gen_random_uuid(), $1, k, 'USD', s, 0, 0, now(), now()
FROM unnest(ARRAY['funding', 'clearing', 'settlement:stripe', 'settlement:paypal']) k, generate_series(0, $2 - 1) s;
INSERT INTO accounts (id, tenant_id, kind, user_id, currency, balance, version, created_at, updated_at)
SELECT gen_random_uuid(), $1, 'user', 'raw-' || n, 'USD', 100000000000, 0, now(), now()
FROM generate_series(1, $2) n;
"""


async def raw_load(database_url: str, database: str, clients: int, seconds: float, accounts: int,
                   warmup: float, *, retries: int, noise: float, quiet_wait: float) -> dict[str, Any]:
    async def init(conn: Any) -> None:
        for kind in ("json", "jsonb"):
            await conn.set_type_codec(kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")

    tenant = uuid.uuid4()
    q = raw_sql()
    admin = await connect(database_url)
    try:
        tenants, systems, users = RAW_SEED.strip().split(";\n")
        for statement, args in ((tenants, [tenant]), (systems, [tenant, q["shards"]]), (users, [tenant, accounts])):
            await admin.execute(statement, *args)
        ids = [r["id"] for r in await admin.fetch("SELECT id FROM accounts WHERE tenant_id = $1 AND kind = 'user'",
                                                  tenant)]
    finally:
        await admin.close()
    conns = [await connect(database_url) for _ in range(clients)]
    for conn in conns:
        await init(conn)
    latencies: list[float] = []
    errors: Counter[str] = Counter()

    async def client(conn: Any, until: float, record: bool) -> None:
        index = 0
        while time.monotonic() < until:
            index += 1
            started = time.monotonic()
            try:
                await raw_payment(conn, q, tenant, random.choice(ids), PROVIDERS[index % 2])
            except Exception as error:
                errors[type(error).__name__] += 1
                continue
            if record:
                latencies.append(1000 * (time.monotonic() - started))

    try:
        if warmup > 0:
            until = time.monotonic() + warmup
            await asyncio.gather(*(client(c, until, False) for c in conns))
        base.checkpoint(database_url)
        best: dict[str, Any] = {}
        for attempt in range(1 + retries):
            base.checkpoint(database_url)
            base.wait_for_quiet(quiet_wait)
            latencies.clear()
            errors.clear()
            sampler = CpuSampler({}, database)
            sampler.start()
            wal = await wal_mark(conns[0])
            started = time.monotonic()
            await asyncio.gather(*(client(c, started + seconds, True) for c in conns))
            elapsed = time.monotonic() - started
            usage = sampler.stop()
            wal_mb = await wal_rate(conns[0], wal)
            result = {"others": sampler.others, "wal_mb": wal_mb, "clients": clients,
                      "rate": len(latencies) / elapsed,
                      "p50": pct(latencies, 50), "p99": pct(latencies, 99), "count": len(latencies),
                      "errors": dict(errors), "usage": usage, "attempts": attempt + 1, "runs": attempt + 1}
            if best:
                best["runs"] = attempt + 1
            if not best or usage["other"] < best["usage"]["other"]:
                best = result
            if usage["other"] <= noise:
                break
            print(f"   (other processes used {usage['other']:.0f}% of a core during the run: "
                  f"{', '.join(sampler.others)}{'; running it again' if attempt < retries else ''})", flush=True)
    finally:
        for conn in conns:
            await conn.close()
    return best


def raw_run(args: argparse.Namespace) -> dict[str, Any]:
    name, database_url = base.create_database(args.database_url)
    try:
        from adapters.postgres.migrate import apply_migrations

        apply_migrations(database_url)
        result = asyncio.run(raw_load(database_url, name, args.raw_clients, args.duration, args.accounts,
                                      args.warmup, retries=args.retries, noise=args.noise,
                                      quiet_wait=args.quiet_wait))
        drift = base.sql(database_url, "SELECT count(*) FROM accounts a WHERE balance <> coalesce(("
                                       "SELECT sum(amount) FROM account_transactions t WHERE t.account_id = a.id), 0)"
                                       " AND kind IN ('clearing', 'settlement:stripe', 'settlement:paypal')")[0][0]
        result["ledger"] = "ok" if not drift else f"{drift} system account(s) off their entries"
    finally:
        base.drop_database(args.database_url, name)
    return result


# ------------------------------------------------------------------------------------------- reports


MAIN_COLUMNS = ("mock ms", "workers", "load", "created/s", "completed/s", "completed/s in load", "e2e p50 ms",
                "e2e p90 ms", "e2e p99 ms", "e2e max ms", "POST p50 ms", "POST p99 ms", "backlog at stop",
                "failures", "ledger", "÷ raw")
DETAIL_COLUMNS = ("mock ms", "workers", "api p50/p99 ms", "relay p50/p99 ms", "pickup p50/p99 ms",
                  "work p50/p99 ms", "API CPU%",
                  "worker CPU%", "mock CPU%", "DB CPU%", "Redis CPU%", "gen CPU%", "other CPU%",
                  "CPU ms/payment", "lock waits / idle in tx / active", "poll lag p50/p99 ms",
                  "cluster WAL MB/s", "run kept")


def main_cells(row: dict[str, Any]) -> list[str]:
    raw = row.get("raw")
    e2e, post = row["e2e"], row["post"]
    failures = ", ".join(f"{k}: {v}" for k, v in row["failures"].items()) or "none"
    return [str(row["latency"]), str(row["workers"]), row["mode"], f"{row['created_rate']:.0f}",
            f"{row['completed_rate']:.0f}", f"{row['completed_in_load_rate']:.0f}", f"{e2e[50]:.0f}",
            f"{e2e[90]:.0f}", f"{e2e[99]:.0f}", f"{e2e[100]:.0f}", f"{post[50]:.1f}", f"{post[99]:.1f}",
            str(row["backlog"]), failures, "ok" if row.get("ledger") == "ok" else "DRIFT" if row.get("ledger") else "-",
            f"{row['completed_rate'] / raw['rate']:.2f}" if raw and raw["rate"] else ""]


def detail_cells(row: dict[str, Any]) -> list[str]:
    u = row["usage"]
    stages = [f"{row['stages'][s][0]:.0f} / {row['stages'][s][1]:.0f}" for s in ("api", "relay", "pickup", "work")]
    ours = sum(u.get(k, 0.0) for k in ("api", "worker", "mock", "db", "redis"))
    per_payment = 10 * ours * u.get("seconds", 0.0) / max(1, row["completed"])
    return [str(row["latency"]), str(row["workers"]), *stages,
            *(f"{u.get(k, 0.0):.0f}" for k in ("api", "worker", "mock", "db", "redis", "gen", "other")),
            f"{per_payment:.1f}", " / ".join(f"{x:.1f}" for x in row["activity"]),
            f"{row['poll_lag'][0]:.0f} / {row['poll_lag'][1]:.0f}",
            f"{row['wal_mb']:.1f}",
            f"{row.get('attempts', 1)} of {row.get('runs', 1)}"]


def raw_cells(row: dict[str, Any]) -> list[str]:
    raw = row["raw"]
    u = raw["usage"]
    errors = ", ".join(f"{k}: {v}" for k, v in raw["errors"].items()) or "none"
    label = f"{row['latency']} ms, {row['workers']} w" if "e2e" in row else "-"
    return [label, str(raw["clients"]), f"{raw['rate']:.0f}", f"{raw['p50']:.1f}", f"{raw['p99']:.1f}", errors,
            f"{u['db']:.0f}", f"{u['gen']:.0f}", f"{u['other']:.0f}", f"{10 * u['db'] / max(1e-9, raw['rate']):.2f}",
            f"{raw['wal_mb']:.1f}", raw.get("ledger", "-"),
            f"{raw.get('attempts', 1)} of {raw.get('runs', 1)}"]


RAW_COLUMNS = ("after run", "connections", "payments/s", "p50 ms (3 tx)", "p99 ms (3 tx)", "errors", "DB CPU%",
               "gen CPU%", "other CPU%", "DB ms/payment", "cluster WAL MB/s", "ledger", "run kept")


def _text(columns: tuple[str, ...], rows: list[list[str]]) -> str:
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    return "\n".join([line, "-" * len(line),
                      *("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)])


def _markdown(columns: tuple[str, ...], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
                      *("| " + " | ".join(r) + " |" for r in rows)])


def render_text(rows: list[dict[str, Any]]) -> str:
    return _text(MAIN_COLUMNS, [main_cells(r) for r in rows])


def render_all(rows: list[dict[str, Any]], markdown: bool) -> str:
    table = _markdown if markdown else _text
    pipelines = [r for r in rows if "e2e" in r]
    parts = [table(MAIN_COLUMNS, [main_cells(r) for r in pipelines]), "",
             table(DETAIL_COLUMNS, [detail_cells(r) for r in pipelines])] if pipelines else []
    raws = [r for r in rows if r.get("raw")]
    if raws:
        parts += ["", "Raw baseline, run right after each pipeline run (the same three transactions per payment from"
                  " asyncpg; no HTTP, Redis, Dramatiq or provider):", "",
                  table(RAW_COLUMNS, [raw_cells(r) for r in raws])]
    return "\n".join(parts)


def machine_facts(args: argparse.Namespace) -> dict[str, str]:
    model = ""
    with contextlib.suppress(OSError):
        model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), "")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=False).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True, check=False).stdout.strip()
    facts = base.server_facts(args.database_url)
    return {"cpus": str(os.cpu_count()), "cpu": model, "commit": commit + (" (modified)" if dirty else ""),
            "postgres": facts["postgres"], "synchronous_commit": facts["synchronous_commit"], "fsync": facts["fsync"],
            "shared_buffers": facts["shared_buffers"], "redis": redis_version(args.redis_url),
            "worker_concurrency": str(args.worker_concurrency or "16 (default)")}


# ---------------------------------------------------------------------------------------------- main


def add_server_args(parser: argparse.ArgumentParser) -> None:
    """--database-url, --redis-url, --redis-dbs (also bench/webhooks.py's)."""
    parser.add_argument("--database-url", default="postgresql://root@127.0.0.1:5432/postgres",
                        help="server to benchmark; a fresh database is created per run (default: %(default)s)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379")
    parser.add_argument("--redis-dbs", default="8-13",
                        help="Redis database indexes a run may take (the first empty one): 8-13 or 8,9,10")


def add_output_args(parser: argparse.ArgumentParser) -> None:
    """--keep-logs, --markdown, --json (also bench/webhooks.py's)."""
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs (printed path)")
    parser.add_argument("--markdown", help="also write the tables as Markdown to this file")
    parser.add_argument("--json", help="also write the results as JSON to this file")


def finish_args(args: argparse.Namespace) -> argparse.Namespace:
    """The load mode from --rate / --clients / --in-flight (args.mode, load_value, mode_label; in-flight 16 when
    none is given), and --redis-dbs ("8-13" or "8,9,10") as a list of indexes."""
    if args.rate is not None:
        args.mode, args.load_value, args.mode_label = "rate", args.rate, f"rate {args.rate:g}/s"
    elif args.clients is not None:
        args.mode, args.load_value, args.mode_label = "clients", args.clients, f"{args.clients} clients"
    else:
        in_flight = args.in_flight or 16
        args.mode, args.load_value, args.mode_label = "in-flight", in_flight, f"{in_flight} in flight"
    dbs: list[int] = []
    for part in args.redis_dbs.split(","):
        low, _, high = part.partition("-")
        dbs += list(range(int(low), int(high or low) + 1))
    args.redis_dbs = dbs
    return args


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_server_args(parser)
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of load per run (default: %(default)s)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--clients", type=int, help="closed loop on the POST: N creators")
    group.add_argument("--in-flight", type=int,
                       help="closed loop end to end: N payments in flight (the default, 16)")
    group.add_argument("--rate", type=float, help="open loop: POSTs per second")
    parser.add_argument("--max-outstanding", type=int, default=256, help="open loop: most POSTs in flight")
    parser.add_argument("--latencies", default="0,50", help="mock provider latencies, ms, comma-separated")
    parser.add_argument("--workers", default="1,2", help="worker process counts, comma-separated")
    parser.add_argument("--worker-concurrency", type=int, default=0,
                        help="PAYMENTS_WORKER_CONCURRENCY (default: the product's, 16)")
    parser.add_argument("--accounts", type=int, default=200, help="funded source accounts (default: %(default)s)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of unrecorded load first")
    parser.add_argument("--drain-timeout", type=float, default=60.0,
                        help="after the load, wait at most this long for created payments to finish")
    parser.add_argument("--poll-ms", type=float, default=20.0, help="completion poll interval")
    parser.add_argument("--raw-clients", type=int, default=8,
                        help="connections of the raw baseline (default: %(default)s, near its peak on 2 cores)")
    parser.add_argument("--no-raw", action="store_true", help="skip the raw baseline")
    parser.add_argument("--quiet-wait", type=float, default=60.0,
                        help="before each run, wait at most this long for other work on the machine to stop")
    parser.add_argument("--noise", type=float, default=15.0,
                        help="a run during which other processes used more than this %% of a core is disturbed")
    parser.add_argument("--retries", type=int, default=2, help="runs a disturbed run again at most this many times")
    add_output_args(parser)
    return finish_args(parser.parse_args(argv))


def install_uvloop() -> None:
    """uvloop's event loop for asyncio.run, where it is installed."""
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()


@contextlib.contextmanager
def runs_dir(prefix: str, keep: bool) -> Iterator[Path]:
    """A folder for the runs' folders, removed at the end unless `keep`."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


def facts_line(facts: dict[str, str], workers: str, args: argparse.Namespace) -> str:
    """The machine, the servers, the commit, `workers` and the load, for the head of the report."""
    return (f"\n{facts['cpus']} CPUs ({facts['cpu']}); PostgreSQL {facts['postgres']} (synchronous_commit="
            f"{facts['synchronous_commit']}, fsync={facts['fsync']}, shared_buffers={facts['shared_buffers']}); "
            f"Redis {facts['redis']}; commit {facts['commit']}; {workers}; "
            f"{args.duration:g} s per run, load: {args.mode_label}\n")


def warn_disturbed(where: str, row: dict[str, Any]) -> None:
    if row["usage"].get("other", 0) > 15:
        print(f"WARNING {where}: other processes used {row['usage']['other']:.0f}% of a core ("
              f"{', '.join(row['others'])}): a disturbed run")


def write_files(args: argparse.Namespace, facts: dict[str, str], rows: list[dict[str, Any]],
                render: Callable[[list[dict[str, Any]], bool], str]) -> None:
    """--markdown (`render(rows, True)`) and --json (facts, arguments and rows)."""
    if args.markdown:
        Path(args.markdown).write_text(render(rows, True) + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps({"facts": facts, "args": vars(args), "rows": rows},
                                              indent=1, default=str))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_uvloop()
    latencies = [int(x) for x in args.latencies.split(",") if x.strip()]
    worker_counts = [int(x) for x in args.workers.split(",") if x.strip()]
    facts = machine_facts(args)
    rows: list[dict[str, Any]] = []
    with runs_dir("payments-bench-e2e-", args.keep_logs) as tmp:
        for latency in latencies:
            for workers in worker_counts:
                row = pipeline_run(args, latency, workers, tmp)
                rows.append(row)
                if not args.no_raw:
                    print(f"== raw baseline: {args.raw_clients} asyncpg connections", flush=True)
                    row["raw"] = raw_run(args)
                    print(_text(RAW_COLUMNS, [raw_cells(row)]).splitlines()[-1], flush=True)
        if not rows and not args.no_raw:
            print(f"== raw baseline only: {args.raw_clients} asyncpg connections", flush=True)
            rows.append({"latency": "-", "workers": "-", "raw": raw_run(args)})
    print(facts_line(facts, f"worker concurrency {facts['worker_concurrency']}", args))
    print(render_all(rows, markdown=False))
    print("\ncreated/s: 202s per second of load; completed/s: completions / (last completion - first POST);\n"
          "completed/s in load: completions during the load window / its length; backlog at stop: created but not\n"
          "completed when the load stopped. e2e = completed_at - POST start (same host clock). Stages: api = POST\n"
          "start -> created_at, relay = -> the payment.created outbox row's published_at, pickup = -> the\n"
          "payment.processing event, work = -> completed_at.\n"
          "CPU in % of one core from the start of the load to the end of the drain; CPU ms/payment counts API,\n"
          "workers, mock, DB and Redis. ÷ raw: completed/s divided by the payments/s of the raw baseline run\n"
          "right after it. cluster WAL MB/s: written by every database of the server (ours: 0.3-2): more is\n"
          "other people's work on the shared server, which CPU samples do not show.")
    pipelines = [r for r in rows if "e2e" in r]
    paired = [r for r in pipelines if r.get("raw") and r["raw"]["rate"]]
    if paired:
        print("\npipeline completed/s ÷ raw payments/s: " + ", ".join(
            f"{r['latency']} ms/{r['workers']}w {r['completed_rate']:.0f}/{r['raw']['rate']:.0f} = "
            f"{r['completed_rate'] / r['raw']['rate']:.2f}" for r in paired))
    for row in pipelines:
        where = f"mock {row['latency']} ms, {row['workers']} worker(s)"
        if row["stuck"]:
            print(f"WARNING {where}: {len(row['stuck'])} payment(s) not final after the drain "
                  f"({args.drain_timeout:g} s), e.g. " + "; ".join(row["stuck"][:5]))
        if row["negative_api"]:
            print(f"WARNING {where}: {row['negative_api']} payment(s) created before their POST started: "
                  "the clocks disagree, e2e times are suspect")
        if row.get("ledger") not in (None, "ok"):
            print(f"WARNING {where}: ledger check: {row['ledger']}")
        for problem in row["problems"]:
            print(f"WARNING {where}: {problem}")
        warn_disturbed(where, row)
    write_files(args, facts, rows, render_all)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Soak: the whole stack under a steady mixed load at ~70 % of its peak for --minutes, watching every process's memory.

    .venv/bin/python bench/soak.py                         # find the peak (20 s), then 10 minutes at 70 % of it
    .venv/bin/python bench/soak.py --peak 120 --minutes 10 --json /tmp/soak.json
    .venv/bin/python bench/soak.py --minutes 3 --warmup-minutes 1     # a quick look

What it does:
  1. starts its own redis-server on a free port (so that Redis's memory is this run's alone), creates a fresh
     database (bench/payments.py's case(): migrated, dropped at the end), and starts `payments mock-providers`,
     --workers `payments worker` processes, `payments serve`, and bench/webhooks.py's receiver on 127.0.0.1;
     creates an API key, --accounts funded accounts and one webhook subscription (payment.completed,
     refund.succeeded, hold.captured, hold.voided) to the receiver;
  2. unless --peak is given, finds the peak: --peak-clients closed-loop clients send the mix for --peak-seconds,
     then the workers settle every payment and refund and deliver every webhook the probe started; the peak is
     the requests answered over that whole time (the pipeline's rate, not the API's answers alone);
  3. runs the mix open loop (requests start on a fixed schedule, whatever the answers; at most
     --max-outstanding in flight, beyond which a request is counted as `not sent`) at --fraction of the peak
     for --minutes. The mix per request: 50 % transfers (POST /transfers), 20 % external payments
     (POST /payments, stripe/paypal alternately), 10 % refunds of an earlier external payment
     (POST /payments/{id}/refund), 10 % holds (POST /holds), 10 % capture or void of an earlier hold;
  4. every --sample-seconds samples the memory of EVERY process: the API's process tree, each worker's tree,
     the mock's tree, this database's PostgreSQL backends (a backend's private memory, RssAnon, the mean over
     them: the shared buffers they touch are not theirs, and their number follows the pools), and the
     redis-server; also the webhook deliveries received;
  5. reports each process group's memory growth after the warm-up (--warmup-minutes; the median of the first
     three samples after it against the median of the last three), errors (any answer but 2xx other than the
     expected business refusals 422 insufficient_funds and 409 invalid_state_transition for a refund of a
     payment not yet completed, and any transport error), latency percentiles per minute, the payments left
     unfinished after a drain, the webhook deliveries received and the Dramatiq queues' lengths left (not in the
     verdict), what each process logged at level warning and above, and `payments ledger check`; then one line:
     SOAK PASS when every group grew < --growth-limit %, there was no error, the generator kept the schedule and
     the ledger is clean; SOAK FAIL with the reasons otherwise.
The machine is shared: the `other` CPU (processes not ours) is printed per minute so that a disturbed minute shows.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import math
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
base: Any = importlib.import_module("bench.run")
pay: Any = importlib.import_module("bench.payments")
hooks: Any = importlib.import_module("bench.webhooks")

EVENTS = ["payment.completed", "refund.succeeded", "hold.captured", "hold.voided"]
#: (operation, weight) of the mix.
MIX = (("transfer", 50), ("payment", 20), ("refund", 10), ("hold", 10), ("settle_hold", 10))
#: Non-2xx answers that are business refusals the load provokes on purpose or by timing, not errors.
EXPECTED_REFUSALS = {(422, "insufficient_funds"), (409, "invalid_state_transition")}


# ------------------------------------------------------------------------------------------- the report


def growth(samples: list[tuple[float, float]], warmup: float, window: int = 3) -> float | None:
    """% growth of a memory series [(seconds since start, bytes)] after `warmup` seconds: the median of the
    last `window` samples against the median of the first `window` samples at or after the warm-up;
    None when there are fewer than 2 * window samples after the warm-up."""
    after = [value for at, value in samples if at >= warmup]
    if len(after) < 2 * window:
        return None
    first, last = statistics.median(after[:window]), statistics.median(after[-window:])
    if first <= 0:
        return None
    return 100.0 * (last - first) / first


def verdict(growths: dict[str, float | None], errors: int, not_sent: int, ledger_clean: bool,
            limit: float) -> tuple[bool, list[str]]:
    """(passed, reasons it failed) of a soak."""
    reasons = []
    for name, value in growths.items():
        if value is None:
            reasons.append(f"{name}: too few samples after the warm-up")
        elif value >= limit:
            reasons.append(f"{name} grew {value:.1f} % (limit {limit:g} %)")
    if errors:
        reasons.append(f"{errors} error(s)")
    if not_sent:
        reasons.append(f"{not_sent} request(s) not sent (more than --max-outstanding in flight)")
    if not ledger_clean:
        reasons.append("payments ledger check is not clean")
    return not reasons, reasons


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] if ordered else 0.0


# ------------------------------------------------------------------------------------------- memory


def _status_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, RssAnon) of a process in kB; (0, 0) if it is gone."""
    rss = anon = 0
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("RssAnon:"):
                    anon = int(line.split()[1])
    except OSError:
        pass
    return rss, anon


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                ppid = int(handle.read().rsplit(") ", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                cmd = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        found[int(entry)] = (ppid, cmd)
    return found


def _tree(root: int, procs: dict[int, tuple[int, str]]) -> list[int]:
    tree, frontier = [root], [root]
    while frontier:
        parent = frontier.pop()
        children = [p for p, (pp, _) in procs.items() if pp == parent]
        tree += children
        frontier += children
    return tree


def sample_memory(roots: dict[str, int], database: str) -> dict[str, dict[str, int]]:
    """Each group's {"rss", "anon", "processes"} in bytes: the process tree of each root, and "postgres" (this
    database's backends)."""
    procs = _processes()
    groups: dict[str, dict[str, int]] = {}
    for name, root in roots.items():
        pids = _tree(root, procs) if root in procs else []
        kb = [_status_kb(p) for p in pids]
        groups[name] = {"rss": 1024 * sum(r for r, _ in kb), "anon": 1024 * sum(a for _, a in kb),
                        "processes": len(pids)}
    backends = [p for p, (_, cmd) in procs.items() if cmd.startswith("postgres: ") and f" {database} " in cmd]
    kb = [_status_kb(p) for p in backends]
    groups["postgres"] = {"rss": 1024 * sum(r for r, _ in kb), "anon": 1024 * sum(a for _, a in kb),
                          "processes": len(backends)}
    return groups


def measured(group: str, values: dict[str, int]) -> int:
    """The memory a group's verdict uses: RSS, but for PostgreSQL a backend's private (anonymous) memory, the
    mean over this database's backends: their number follows the pools (more open while requests queue), which
    is not any process growing."""
    if group == "postgres":
        return values["anon"] // max(values["processes"], 1)
    return values["rss"]


# ------------------------------------------------------------------------------------------- the load


@dataclass
class Load:
    base_url: str
    key: str
    accounts: list[str]
    started: float = 0.0
    rng: random.Random = field(default_factory=lambda: random.Random(12))
    payments: list[str] = field(default_factory=list)  # external payments created, not yet refunded
    holds: list[str] = field(default_factory=list)  # active holds created
    results: list[tuple[float, str, int, float]] = field(default_factory=list)  # (at, op, status, ms)
    refusals: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)
    counter: int = 0
    not_sent: int = 0

    def pick(self) -> str:
        roll = self.rng.randrange(100)
        for op, weight in MIX:
            if roll < weight:
                return op
            roll -= weight
        return "transfer"


async def one(http: Any, load: Load, op: str) -> None:
    load.counter += 1
    key = {"Idempotency-Key": f"soak-{load.counter}-{uuid.uuid4().hex[:8]}"}
    rng = load.rng
    cents = rng.randint(1, 100)
    amount = f"{cents // 100}.{cents % 100:02d}"
    source, destination = rng.sample(load.accounts, 2)
    requeue: tuple[list[str], str] | None = None
    if op == "refund" and load.payments:
        target = load.payments.pop(0)
        method, path, body, expect = "POST", f"/api/v1/payments/{target}/refund", {"reason": "soak"}, 202
        requeue = (load.payments, target)
    elif op == "settle_hold" and load.holds:
        target = load.holds.pop(0)
        action = "capture" if rng.random() < 0.5 else "void"
        method, path, body, expect = "POST", f"/api/v1/holds/{target}/{action}", {}, 200
    elif op == "payment":
        provider = "stripe" if load.counter % 2 else "paypal"
        method, path, expect = "POST", "/api/v1/payments", 202
        body = {"payment_type": "external_payment", "source_account_id": source, "amount": "1.00",
                "currency": "USD", "provider": provider}
    elif op == "hold":
        method, path, expect = "POST", "/api/v1/holds", 201
        body = {"source_account_id": source, "destination_account_id": destination, "amount": amount,
                "currency": "USD"}
    else:
        op = "transfer"
        method, path, expect = "POST", "/api/v1/transfers", 201
        body = {"source_account_id": source, "destination_account_id": destination, "amount": amount,
                "currency": "USD"}
    began = time.monotonic()
    try:
        answer = await http.request(method, path, json=body, headers=key)
    except Exception as error:  # every transport failure is an error of the soak
        load.errors[f"{op}: {type(error).__name__}"] += 1
        if len(load.error_samples) < 10:
            load.error_samples.append(f"{op} {path}: {error!r}")
        return
    ms = 1000 * (time.monotonic() - began)
    load.results.append((began - load.started, op, answer.status_code, ms))
    if answer.status_code == expect:
        if op == "payment":
            load.payments.append(answer.json()["id"])
        elif op == "hold":
            load.holds.append(answer.json()["id"])
        return
    code = ""
    with contextlib.suppress(ValueError):
        code = str(answer.json().get("type", "")).rsplit("/", 1)[-1]
    if (answer.status_code, code) in EXPECTED_REFUSALS:
        load.refusals[f"{op} {answer.status_code} {code}"] += 1
        if requeue and code == "invalid_state_transition":
            requeue[0].append(requeue[1])  # not completed yet: refund it later
        return
    load.errors[f"{op}: {answer.status_code} {code}"] += 1
    if len(load.error_samples) < 10:
        load.error_samples.append(f"{op} {path}: {answer.status_code} {answer.text[:300]}")


async def closed_loop(load: Load, clients: int, seconds: float) -> float:
    """Answered requests per second with `clients` clients sending the mix back to back."""
    load.started = time.monotonic()
    deadline = load.started + seconds
    async with pay.RawHttp(load.base_url, timeout=30, headers={"Authorization": f"Bearer {load.key}"}) as http:
        async def client() -> None:
            while time.monotonic() < deadline:
                await one(http, load, load.pick())

        await asyncio.gather(*(client() for _ in range(clients)))
    return len(load.results) / (time.monotonic() - load.started)


async def open_loop(load: Load, rate: float, seconds: float, max_outstanding: int,
                    on_tick: Any, tick_seconds: float) -> None:
    """The mix at `rate` requests/s for `seconds`, on schedule; `on_tick(elapsed)` every `tick_seconds`."""
    async with pay.RawHttp(load.base_url, timeout=30, headers={"Authorization": f"Bearer {load.key}"}) as http:
        load.started = time.monotonic()
        outstanding: set[asyncio.Task[None]] = set()
        sent = 0
        next_tick = 0.0
        while True:
            elapsed = time.monotonic() - load.started
            if elapsed >= next_tick:
                await on_tick(elapsed)
                next_tick += tick_seconds
            if elapsed >= seconds:
                break
            due = int(elapsed * rate) + 1
            while sent < due:
                sent += 1
                if len(outstanding) >= max_outstanding:
                    load.not_sent += 1
                    continue
                task = asyncio.create_task(one(http, load, load.pick()))
                outstanding.add(task)
                task.add_done_callback(outstanding.discard)
            await asyncio.sleep(max(0.0, (sent / rate) - (time.monotonic() - load.started)))
        if outstanding:
            await asyncio.wait(outstanding, timeout=60)


# --------------------------------------------------------------------------------------------- running


def start_redis(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = base.free_port()
    popen = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--dir", str(tmp)],
                             stdout=(tmp / "redis.log").open("ab"), stderr=subprocess.STDOUT)
    import redis

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            redis.Redis(port=port).ping()
            return popen, f"redis://127.0.0.1:{port}"
        except redis.ConnectionError:
            time.sleep(0.1)
    popen.kill()
    raise RuntimeError("redis-server did not answer in 30 s")


def ledger_check(env: dict[str, str]) -> tuple[bool, str]:
    done = subprocess.run([sys.executable, "-m", "payments", "ledger", "check"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    return done.returncode == 0, (done.stdout + done.stderr).strip()[-600:]


def unfinished(database_url: str) -> int:
    return int(base.sql(database_url, "SELECT count(*) FROM payments WHERE status IN ('pending', 'processing')")[0][0])


def backlog(database_url: str) -> int:
    """The work the pipeline behind the API still owes: payments and refunds not settled, deliveries pending."""
    return int(base.sql(database_url, "SELECT (SELECT count(*) FROM payments WHERE status IN ('pending', 'processing'))"
                        " + (SELECT count(*) FROM refunds WHERE status = 'pending')"
                        " + (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending')")[0][0])


def pipeline_peak(answered_rate: float, seconds: float, database_url: str, timeout: float) -> float:
    """The mix's rate the whole pipeline sustains: what the probe's clients had answered, over the probe's time and
    the time the workers then took to settle every payment and refund and deliver every webhook it started (the
    API's answers alone overstate it when the workers fall behind)."""
    began = time.monotonic()
    while backlog(database_url) and time.monotonic() - began < timeout:
        time.sleep(0.5)
    drain = time.monotonic() - began
    return answered_rate * seconds / (seconds + drain)


def soak(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    redis_proc, redis_url = start_redis(tmp)
    args.redis_url = redis_url
    try:
        with pay.case(args, tmp, "soak-") as run:
            result = soak_case(args, run, redis_proc.pid)
        for name, lines in run.logs.items():  # what each process logged at level warning and above
            if lines:
                print(f"{name} logged:\n" + "\n".join(lines))
        return result
    finally:
        redis_proc.terminate()
        try:
            redis_proc.wait(10)
        except subprocess.TimeoutExpired:
            redis_proc.kill()
            redis_proc.wait()


def soak_case(args: argparse.Namespace, run: Any, redis_pid: int) -> dict[str, Any]:
    stack = run.stack
    api_port, mock_port, receiver_port = base.free_port(), base.free_port(), base.free_port()
    env = pay.case_env(run, api_port, args.worker_concurrency, PAYMENTS_MOCK_PORT=str(mock_port),
                       PAYMENTS_MOCK_LATENCY=f"{args.mock_latency}ms", PAYMENTS_WEBHOOKS_ALLOW_PRIVATE_URLS="true")
    key = base.create_key(env)
    if args.trace_memory:  # bench/memtrace/sitecustomize.py: tracemalloc snapshots of the long-lived processes
        Path(args.trace_memory).mkdir(parents=True, exist_ok=True)
        env.update(PYTHONPATH=os.pathsep.join(filter(None, (str(ROOT / "bench" / "memtrace"), env.get("PYTHONPATH")))),
                   PAYMENTS_BENCH_TRACEMALLOC_DIR=str(Path(args.trace_memory).resolve()),
                   PAYMENTS_BENCH_TRACEMALLOC_SECONDS=str(args.trace_seconds))
    stack.spawn("receiver", [sys.executable, str(ROOT / "bench" / "webhooks.py"), "--receive", str(receiver_port)])
    pay.wait_http(f"http://127.0.0.1:{receiver_port}/_count", stack, "the receiver")
    stack.start("mock", "mock-providers", env)
    pay.wait_http(f"http://127.0.0.1:{mock_port}/health", stack, "payments mock-providers")
    base_url = pay.start_workers_and_api(run, env, args.workers, api_port)
    accounts = asyncio.run(base.create_accounts(base_url, key, args.accounts))
    secret = asyncio.run(subscribe(base_url, key, receiver_port))
    asyncio.run(hooks.control(receiver_port, "POST", "/_setup", {"secrets": {"1": secret}, "verify_every": 10}))
    roots = {name: popen.pid for name, popen in stack.procs.items() if name != "receiver"}
    roots["redis"] = redis_pid
    print(f"stack: API {base_url}, {args.workers} worker(s), mock :{mock_port}, receiver :{receiver_port}, "
          f"Redis {args.redis_url}, database {run.database}, {len(accounts)} accounts", flush=True)

    peak = args.peak
    if not peak:
        probe = Load(base_url, key, accounts)
        answered = asyncio.run(closed_loop(probe, args.peak_clients, args.peak_seconds))
        peak = min(answered, pipeline_peak(answered, args.peak_seconds, run.database_url, args.drain_timeout))
        print(f"peak: {answered:.0f} req/s answered with {args.peak_clients} closed-loop clients over "
              f"{args.peak_seconds:g} s (errors {dict(probe.errors) or 'none'}); {peak:.0f} req/s with the workers' "
              "backlog settled (the peak)", flush=True)
    rate = args.fraction * peak
    seconds = 60 * args.minutes
    print(f"soak: {rate:.0f} req/s ({100 * args.fraction:.0f} % of {peak:.0f}) for {args.minutes:g} min, "
          f"memory every {args.sample_seconds:g} s", flush=True)

    load = Load(base_url, key, accounts)
    samples: list[tuple[float, dict[str, dict[str, int]]]] = []
    delivered: list[tuple[float, int]] = []
    cpu: list[tuple[float, tuple[int, int]]] = []
    received = 0

    async def on_tick(elapsed: float) -> None:
        nonlocal received
        stack.check()
        samples.append((elapsed, sample_memory(roots, run.database)))
        taken = await hooks.control(receiver_port, "POST", "/_take")  # the receiver keeps nothing between ticks
        received += len(taken["records"])
        delivered.append((elapsed, received))
        cpu.append((elapsed, base.machine_ticks()))
        line = "  ".join(f"{n} {measured(n, v) / 2**20:.0f}" for n, v in samples[-1][1].items())
        print(f"  {elapsed:5.0f}s  sent {len(load.results)}  errors {sum(load.errors.values())}  "
              f"deliveries {received}  MiB: {line}", flush=True)

    asyncio.run(open_loop(load, rate, seconds, args.max_outstanding, on_tick, args.sample_seconds))
    drain_deadline = time.monotonic() + args.drain_timeout
    while unfinished(run.database_url) and time.monotonic() < drain_deadline:
        time.sleep(1)
    left = unfinished(run.database_url)
    time.sleep(min(10.0, args.drain_timeout))  # the last deliveries
    received += len(asyncio.run(hooks.control(receiver_port, "POST", "/_take"))["records"])
    outbox_rows = base.sql(run.database_url, "SELECT status, count(*) FROM webhook_deliveries GROUP BY status") \
        if base.sql(run.database_url, "SELECT to_regclass('webhook_deliveries') IS NOT NULL")[0][0] else []
    queued = queue_lengths(run.redis_url)
    stack.check()
    clean, ledger_text = ledger_check(env)
    dead = base.sql(run.database_url, "SELECT count(*) FROM dead_letters")[0][0]
    print(f"still queued in Redis after the drain (messages not yet consumed): {queued}")
    return {**report(args, peak, rate, load, samples, cpu, left, received, dict(outbox_rows), clean, ledger_text,
                     dead), "queued": queued}


def queue_lengths(redis_url: str) -> dict[str, int]:
    """The Dramatiq queues' lengths (a backlog the worker has not consumed yet)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        return {queue: int(client.llen(f"dramatiq:{queue}")) for queue in ("payments", "events", "webhooks")}
    finally:
        client.close()


async def subscribe(base_url: str, key: str, receiver_port: int) -> str:
    import httpx

    async with httpx.AsyncClient(base_url=base_url, timeout=30, trust_env=False,
                                 headers={"Authorization": f"Bearer {key}"}) as http:
        answer = await http.post("/api/v1/webhooks", json={"url": f"http://127.0.0.1:{receiver_port}/hook/1",
                                                          "events": EVENTS, "description": "soak"})
        if answer.status_code != 201:
            raise RuntimeError(f"creating the webhook answered {answer.status_code}: {answer.text}")
        return str(answer.json()["secret"])


def report(args: argparse.Namespace, peak: float, rate: float, load: Load,
           samples: list[tuple[float, dict[str, dict[str, int]]]], cpu: list[tuple[float, tuple[int, int]]],
           left: int, received: int, deliveries: dict[str, int], clean: bool, ledger_text: str,
           dead: int) -> dict[str, Any]:
    warmup = 60 * args.warmup_minutes
    groups = list(samples[0][1]) if samples else []
    series = {g: [(at, float(measured(g, s[g]))) for at, s in samples if g in s] for g in groups}
    growths = {g: growth(series[g], warmup) for g in groups}
    print("\nmemory (MiB; postgres = a backend's private memory, the mean over this database's backends; the rest "
          "RSS of the process tree)")
    print(f"{'group':<10} {'procs':>5} {'start':>8} {'warm':>8} {'end':>8} {'max':>8} {'growth after warm-up':>21}")
    for g in groups:
        values = [v for _, v in series[g]]
        after = [v for at, v in series[g] if at >= warmup] or values
        value = growths[g]
        print(f"{g:<10} {samples[-1][1][g]['processes']:>5} {values[0] / 2**20:8.1f} {after[0] / 2**20:8.1f} "
              f"{values[-1] / 2**20:8.1f} {max(values) / 2**20:8.1f} "
              f"{'n/a' if value is None else f'{value:+.1f} %':>21}")
    print("\nper minute: requests answered, rate, latency ms (all operations), machine CPU (% of a core)")
    by_minute: dict[int, list[float]] = defaultdict(list)
    last_minute = max(0, math.ceil(args.minutes) - 1)  # a request that started late counts in the last one
    for at, _op, _status, ms in load.results:
        by_minute[min(int(at // 60), last_minute)].append(ms)
    minutes = []
    for minute in sorted(by_minute):
        values = by_minute[minute]
        busy = _busy(cpu, 60 * minute, 60 * (minute + 1))
        span = max(1.0, min(60.0, 60 * args.minutes - 60 * minute))  # the last minute may be a part of one
        row = {"minute": minute + 1, "requests": len(values), "rate": len(values) / span, "p50": percentile(values, 50),
               "p90": percentile(values, 90), "p99": percentile(values, 99), "max": max(values), "machine_cpu": busy}
        minutes.append(row)
        print(f"  min {row['minute']:>2}: {row['requests']:6d} req  {row['rate']:6.1f}/s  p50 {row['p50']:7.1f}  "
              f"p90 {row['p90']:7.1f}  p99 {row['p99']:7.1f}  max {row['max']:8.1f}  machine {busy:4.0f} %")
    ops = Counter((op, status) for _, op, status, _ in load.results)
    print("\nanswers: " + ", ".join(f"{op} {status}: {n}" for (op, status), n in sorted(ops.items())))
    print(f"expected refusals: {dict(load.refusals) or 'none'}")
    errors = sum(load.errors.values())
    print(f"errors: {dict(load.errors) or 'none'}")
    for line in load.error_samples:
        print(f"  e.g. {line}")
    print(f"payments unfinished after the drain: {left}; dead letters: {dead}; webhook deliveries received: "
          f"{received} (deliveries by status: {deliveries or 'n/a'})")
    last = ledger_text.splitlines()[-1] if ledger_text else ""
    print(f"payments ledger check: {'clean' if clean else 'NOT CLEAN'}: {last}")
    passed, reasons = verdict(growths, errors, load.not_sent, clean, args.growth_limit)
    if left:
        reasons.append(f"{left} payment(s) still pending/processing after a {args.drain_timeout:g} s drain")
        passed = False
    line = (f"SOAK {'PASS' if passed else 'FAIL'}: {args.minutes:g} min at {rate:.0f} req/s "
            f"({100 * args.fraction:.0f} % of {peak:.0f}); growth after {args.warmup_minutes:g} min warm-up: "
            + ", ".join(f"{g} {'n/a' if v is None else f'{v:+.1f}%'}" for g, v in growths.items())
            + f"; errors {errors}; ledger {'clean' if clean else 'NOT CLEAN'}"
            + ("" if passed else " -- " + "; ".join(reasons)))
    print("\n" + line)
    return {"peak": peak, "rate": rate, "growth": growths, "minutes": minutes, "errors": dict(load.errors),
            "refusals": dict(load.refusals), "unfinished": left, "received": received, "ledger_clean": clean,
            "passed": passed, "reasons": reasons, "verdict": line,
            "memory": [(at, s) for at, s in samples], "not_sent": load.not_sent}


def trace_report(directory: Path, warmup: float, every: float, top: int = 12) -> list[str]:
    """Per traced process: the allocation sites (by traceback) that grew most between the first snapshot taken
    after the warm-up and the last one."""
    import tracemalloc

    lines = []
    for cmd in sorted(directory.glob("*.cmd")):
        pid = cmd.stem
        snaps = sorted(directory.glob(f"{pid}-*.snap"))
        after = [s for s in snaps if int(s.stem.rsplit("-", 1)[1]) * every >= warmup]  # n * every + delay s in
        if len(after) < 2:
            continue
        first, last = (tracemalloc.Snapshot.load(str(s)) for s in (after[0], after[-1]))
        stats = last.compare_to(first, "traceback")
        total = sum(s.size_diff for s in stats)
        lines += ["", f"tracemalloc, pid {pid} ({cmd.read_text()}): {total / 2**20:+.2f} MiB traced between "
                      f"{after[0].name} and {after[-1].name}; the sites that grew most:"]
        for stat in stats[:top]:
            frames = [f"{f.filename.replace(str(ROOT) + '/', '')}:{f.lineno}" for f in stat.traceback]
            lines.append(f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks  "
                         + " <- ".join(reversed(frames[-4:])))
    return lines


def _busy(cpu: list[tuple[float, tuple[int, int]]], start: float, end: float) -> float:
    inside = [ticks for at, ticks in cpu if start <= at <= end + 1]
    if len(inside) < 2:
        return 0.0
    (b0, t0), (b1, t1) = inside[0], inside[-1]
    return 100.0 * (os.cpu_count() or 1) * (b1 - b0) / max(1, t1 - t0)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgresql://root@127.0.0.1:5432/postgres")
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the soak (default: %(default)s)")
    parser.add_argument("--warmup-minutes", type=float, default=2.0, help="growth is measured after this")
    parser.add_argument("--peak", type=float, default=0.0, help="the peak rate (req/s); default: measure it")
    parser.add_argument("--peak-clients", type=int, default=32)
    parser.add_argument("--peak-seconds", type=float, default=20.0)
    parser.add_argument("--fraction", type=float, default=0.7, help="the soak's rate as a fraction of the peak")
    parser.add_argument("--sample-seconds", type=float, default=10.0)
    parser.add_argument("--growth-limit", type=float, default=10.0, help="%% growth after the warm-up that fails")
    parser.add_argument("--max-outstanding", type=int, default=256)
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--workers", type=int, default=1, help="`payments worker` processes")
    parser.add_argument("--worker-concurrency", type=int, default=0)
    parser.add_argument("--mock-latency", type=int, default=0, help="mock providers' latency, ms")
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument("--trace-memory", metavar="DIR",
                        help="run the payments processes under tracemalloc (bench/memtrace/sitecustomize.py), "
                             "snapshots in DIR; at the end, per process, the allocations that grew most after the "
                             "warm-up. Slows them down: not for the measured soak")
    parser.add_argument("--trace-seconds", type=float, default=60.0, help="--trace-memory's snapshot interval")
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument("--json", help="also write the results as JSON to this file")
    args = parser.parse_args(argv)
    args.redis_dbs = [0]  # of the soak's own redis-server
    return args


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is not on PATH: the soak runs its own")
    signal.signal(signal.SIGTERM, _interrupt)
    pay.install_uvloop()
    load = os.getloadavg()
    print(f"{os.cpu_count()} CPUs, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the start", flush=True)
    with pay.runs_dir("payments-soak-", args.keep_logs) as tmp:
        result = soak(args, tmp)
    load = os.getloadavg()
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the end")
    if args.trace_memory:
        print("\n".join(trace_report(Path(args.trace_memory), 60 * args.warmup_minutes, args.trace_seconds)))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())

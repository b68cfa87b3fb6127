"""End-to-end benchmark of webhook deliveries: POST /api/v1/accounts until the receiver has the event.

    .venv/bin/python bench/webhooks.py                          # 1 and 2 subscriptions, 15 s each, 16 in flight
    .venv/bin/python bench/webhooks.py --duration 15 --markdown /tmp/webhooks.md
    .venv/bin/python bench/webhooks.py --subscriptions 2 --clients 4    # 4 clients POSTing back to back
    .venv/bin/python bench/webhooks.py --rate 50                # open loop: 50 accounts/s whatever happens
    .venv/bin/python bench/webhooks.py --worker-concurrency 16 --workers 2

For each subscription count (--subscriptions, default 1,2) it:
  1. creates a fresh database on --database-url and applies the migrations, and takes a private Redis
     database (the first empty one of --redis-dbs; flushed when the run ends);
  2. starts a receiver (this script with --receive: a minimal asyncio HTTP/1.1 server, keep-alive, that
     answers 200 to every POST on /hook/<n>, notes the wall-clock time at which it had read the whole
     request, and checks the signature of every --verify-every-th delivery per hook with
     `core.signatures.verify_signature`; a bad one is answered 400 and counted), --workers
     `payments worker` processes and `payments serve` (PAYMENTS_WEBHOOKS_ALLOW_PRIVATE_URLS=true, so that
     a 127.0.0.1 URL is accepted), creates an API key and the subscriptions (POST /api/v1/webhooks,
     events ["account.created"], URL http://127.0.0.1:<port>/hook/<n>) and gives their secrets to the
     receiver;
  3. drives POST /api/v1/accounts (no initial balance: one `account.created` event each) for --warmup
     seconds (not recorded) and waits for its deliveries, VACUUM ANALYZE + CHECKPOINT, then for --duration
     seconds from an asyncio httpx client (each POST carries its own X-Request-ID, which the worker sends
     back on each delivery):
       --in-flight N  N clients, each waiting until the receiver has all the deliveries of its account
                      before the next POST (closed loop end to end: a steady state at N accounts in flight;
                      the bench follows the receiver's records every --poll-ms; default 16);
       --clients N    N clients, each POSTing its next account as soon as the previous POST answered
                      (closed loop on the POST only: the deliveries may fall behind; the backlog is reported);
       --rate R       R POSTs per second whatever happens (open loop, at most --max-outstanding in flight);
  4. waits (at most --drain-timeout s) until the receiver has every delivery (accounts created x
     subscriptions), takes its records, and reads the outbox and webhook_deliveries rows of the run;
  5. raw baseline: the bodies the receiver got, each signed again (same headers as the worker sends), POSTed
     to the same receiver from one httpx.AsyncClient with as many concurrent senders as the worker has
     (PAYMENTS_WORKER_CONCURRENCY x --workers), without the API, the database, Redis or Dramatiq;
  6. reports accounts/s, deliveries/s, event-to-receipt latency p50/p90/p99/max, failures, deliveries not
     received after the drain, the median time in each stage, the CPU of each process group (from /proc),
     and deliveries/s as a ratio of the raw baseline's POSTs/s.

Clocks: latency = the receiver's `time.time()` when it had read the delivery minus this script's
`time.time()` when the API's 201 had been read. Every process runs on this host, so both read the same
clock. The stages come from the rows: relay = outbox.created_at (API) -> published_at (relay, database
`now()`), dispatch = -> webhook_deliveries.created_at (dispatch_event, before its write transaction),
deliver = -> receipt (fan-out commit, enqueue, pickup, transaction 1, the POST), record = -> delivered_at
(transaction 2). Every wait is bounded; every process started is stopped (SIGTERM, then SIGKILL) and the
database dropped, even on errors or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import signal
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
base: Any = importlib.import_module("bench.run")  # database, key and CPU helpers
pay: Any = importlib.import_module("bench.payments")  # Redis, processes, CPU sampler, percentiles, tables

EVENT = "account.created"
USER_AGENT = "payments-webhooks/1"  # what the worker sends (core/usecases/webhook_delivery.py)


# ------------------------------------------------------------------------------------------ the receiver


class Receiver:
    """The receiver's state: one record per POST on /hook/<n>, the hooks' secrets, signature counts."""

    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}
        self.verify_every = 10
        self.reset()

    def reset(self) -> None:
        # (wall time, hook, event id, status, body, X-Request-ID: the request that caused the event)
        self.records: list[tuple[float, str, str, int, str, str]] = []
        self.per_hook: Counter[str] = Counter()
        self.ok = self.checked = self.bad = 0

    def hook(self, hook: str, headers: dict[str, str], body: bytes, now: float) -> int:
        from core.signatures import InvalidSignature, verify_signature

        self.per_hook[hook] += 1
        status = 200
        if (self.per_hook[hook] - 1) % self.verify_every == 0:
            self.checked += 1
            try:
                verify_signature(self.secrets[hook], headers.get("payments-signature", ""), body)
            except (InvalidSignature, KeyError):
                self.bad += 1
                status = 400
        self.ok += status == 200
        self.records.append((now, hook, headers.get("payments-event-id", ""), status, body.decode(errors="replace"),
                             headers.get("x-request-id", "")))
        return status

    def control(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        path, _, query = path.partition("?")
        if method == "GET" and path == "/_since":  # (wall, hook, request id, status) of the records from ?i=
            start = int(query.partition("=")[2] or 0)
            return 200, json.dumps([(r[0], r[1], r[5], r[3]) for r in self.records[start:]]).encode()
        if method == "GET" and path == "/_count":
            return 200, json.dumps({"received": len(self.records), "ok": self.ok}).encode()
        if method == "POST" and path == "/_setup":
            config = json.loads(body)
            self.secrets, self.verify_every = config["secrets"], max(1, int(config["verify_every"]))
            self.reset()
            return 200, b"{}"
        if method == "POST" and path == "/_take":
            taken = {"records": self.records, "checked": self.checked, "bad": self.bad}
            self.reset()
            return 200, json.dumps(taken).encode()
        return 404, b"{}"


REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found"}


async def serve_receiver(port: int) -> None:
    state = Receiver()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                body = await reader.readexactly(length) if length else b""
                now = time.time()
                if path.startswith("/hook/"):
                    status, answer = state.hook(path[len("/hook/"):], headers, body, now), b"{}"
                else:
                    status, answer = state.control(method, path, body)
                writer.write(f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Type: application/json\r\n"
                             f"Content-Length: {len(answer)}\r\n\r\n".encode() + answer)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            pass
        except asyncio.CancelledError:  # the receiver stops: a kept-alive connection was waiting for its next POST
            pass
        finally:
            writer.close()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    async with server:
        await stop.wait()


def receiver_main(port: int) -> int:
    pay.install_uvloop()
    asyncio.run(serve_receiver(port))
    return 0


async def control(port: int, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    import httpx

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60, trust_env=False) as http:
        answer = await http.request(method, path, json=body)
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result


# ------------------------------------------------------------------------------------------------ load


@dataclass
class Sent(pay.Post):
    """One POST /api/v1/accounts (when it started and answered: pay.Post), and the account it created."""

    request_id: str = ""  # X-Request-ID
    account_id: str | None = None
    hooks: set[str] = field(default_factory=set)  # in-flight mode: the hooks that received it so far


@dataclass
class Load:
    subscriptions: int
    sent: list[Sent] = field(default_factory=list)
    waiting: dict[str, Sent] = field(default_factory=dict)  # in-flight mode: request id -> not yet received
    counter: int = 0
    skipped: int = 0  # open loop: ticks not sent because --max-outstanding POSTs were in flight
    lag: float = 0.0  # open loop: the generator's worst delay behind schedule, s (set by pay.drive)


async def post_account(http: Any, load: Load, *, wait: bool = False, deadline: float = 0.0) -> None:
    load.counter += 1
    sent = Sent(wall=time.time(), start=time.monotonic(), request_id=uuid.uuid4().hex)
    load.sent.append(sent)
    if wait:
        sent.done = asyncio.get_running_loop().create_future()
        load.waiting[sent.request_id] = sent
    answer = await pay.send(http, sent, "/api/v1/accounts", 201,
                            json={"user_id": f"wh-{load.counter}", "currency": "USD"},
                            headers={"X-Request-ID": sent.request_id})  # comes back on every delivery
    if answer is not None:
        sent.account_id = answer["id"]
    elif sent.done is not None:
        load.waiting.pop(sent.request_id, None)
        return
    await pay.wait_done(sent, deadline)


async def watch(port: int, load: Load, stop: asyncio.Event, interval: float) -> None:
    """In-flight mode: follow the receiver's records and release each client once all its deliveries arrived."""
    import httpx

    cursor = 0
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30, trust_env=False) as http:
        while not stop.is_set():
            records = (await http.get("/_since", params={"i": cursor})).json()
            cursor += len(records)
            for _wall, hook, request_id, status in records:
                sent = load.waiting.get(request_id)
                if sent is None or status != 200:
                    continue
                sent.hooks.add(hook)
                if len(sent.hooks) >= load.subscriptions:
                    del load.waiting[request_id]
                    if sent.done is not None and not sent.done.done():
                        sent.done.set_result(None)
            await asyncio.sleep(interval)


async def run_load(args: argparse.Namespace, ctx: dict[str, Any], seconds: float,
                   roots: dict[str, list[int]] | None) -> dict[str, Any]:
    """One load run, then its drain (until the receiver has accounts x subscriptions deliveries)."""
    import httpx

    load = Load(subscriptions=ctx["subscriptions"])
    limits = httpx.Limits(max_connections=args.max_outstanding if args.mode == "rate" else int(args.load_value))
    sampler = pay.CpuSampler(roots, ctx["database"]) if roots is not None else None
    stop = asyncio.Event()
    watcher = None
    try:
        async with httpx.AsyncClient(base_url=ctx["base_url"], timeout=30, limits=limits, trust_env=False,
                                     headers={"Authorization": f"Bearer {ctx['key']}"}) as http:
            if args.mode == "in-flight":
                watcher = asyncio.create_task(watch(ctx["receiver_port"], load, stop, args.poll_ms / 1000))
            if sampler is not None:
                sampler.start()
            load_start = time.time()
            await pay.drive(http, load, args.mode, args.load_value, seconds, args.max_outstanding, post_account)
            load_end = time.time()
        expected = sum(1 for s in load.sent if s.account_id) * ctx["subscriptions"]
        deadline, count = time.monotonic() + args.drain_timeout, {"received": 0, "ok": 0}
        while time.monotonic() < deadline:
            count = await control(ctx["receiver_port"], "GET", "/_count")
            if count["ok"] >= expected:
                break
            await asyncio.sleep(0.1)
        drain_end = time.time()
        usage = sampler.stop() if sampler is not None else {}
        others = sampler.others if sampler is not None else []
        sampler = None
    finally:
        stop.set()
        if watcher is not None:
            await watcher
        if sampler is not None:
            sampler.stop()
    taken = await control(ctx["receiver_port"], "POST", "/_take")
    return {"load": load, "taken": taken, "expected": expected, "drained": count["ok"] >= expected,
            "load_start": load_start, "load_end": load_end, "drain_end": drain_end, "usage": usage,
            "others": others}


STAGES_SQL = """
SELECT o.aggregate_id::text AS account_id, o.created_at, o.published_at, d.subscription_id::text AS subscription_id,
       d.created_at AS fanned_at, d.delivered_at, d.status, d.attempts
FROM outbox o LEFT JOIN webhook_deliveries d ON d.event_id = o.id
WHERE o.topic = 'account.created' AND o.aggregate_id = ANY($1::uuid[])"""


async def read_rows(database_url: str, ids: list[str]) -> list[Any]:
    conn = await pay.connect(database_url)
    try:
        return list(await conn.fetch(STAGES_SQL, ids))
    finally:
        await conn.close()


def account_of(body: str) -> str:
    data = json.loads(body)["data"]
    return str(data.get("object", data)["id"])


def summarize(result: dict[str, Any], rows: list[Any], ctx: dict[str, Any], args: argparse.Namespace,
              ) -> dict[str, Any]:
    load: Load = result["load"]
    pct = pay.pct
    accepted = {s.account_id: s for s in load.sent if s.account_id}
    hooks: dict[str, str] = ctx["hooks"]  # hook number -> subscription id
    receipts: dict[tuple[str, str], float] = {}  # (subscription id, account id) -> first 2xx receipt
    duplicates = unexpected = 0
    failures: Counter[str] = Counter(str(s.status) if s.status else s.error.split(":")[0]
                                     for s in load.sent if s.status != 201)
    for wall, hook, _event_id, status, body, _request_id in result["taken"]["records"]:
        if status != 200:
            failures[f"receiver answered {status}"] += 1
            continue
        key = (hooks.get(hook, hook), account_of(body))
        if key[1] not in accepted:
            unexpected += 1
        elif key in receipts:
            duplicates += 1
        else:
            receipts[key] = wall
    if result["taken"]["bad"]:
        failures["bad signatures"] = result["taken"]["bad"]
    if load.skipped:
        failures["not sent (max outstanding)"] = load.skipped
    latency = [1000 * (wall - accepted[account].answered) for (_, account), wall in receipts.items()]
    stages: dict[str, list[float]] = {"relay": [], "dispatch": [], "deliver": [], "record": []}
    statuses: Counter[str] = Counter()
    retried = 0
    for row in rows:
        if row["subscription_id"] is None:
            continue
        statuses[row["status"]] += 1
        retried += row["attempts"] > 1
        wall = receipts.get((row["subscription_id"], row["account_id"]))
        if wall is None or row["published_at"] is None or row["delivered_at"] is None:
            continue
        published, fanned = row["published_at"].timestamp(), row["fanned_at"].timestamp()
        stages["relay"].append(1000 * (published - row["created_at"].timestamp()))
        stages["dispatch"].append(1000 * (fanned - published))
        stages["deliver"].append(1000 * (wall - fanned))
        stages["record"].append(1000 * (row["delivered_at"].timestamp() - wall))
    failures.update({f"delivery {k}": v for k, v in statuses.items() if k != "succeeded"})
    if retried:
        failures["deliveries retried"] = retried
    first = min((s.wall for s in load.sent), default=result["load_start"])
    load_seconds = max(1e-6, result["load_end"] - result["load_start"])
    last = max(receipts.values(), default=first)
    in_load = sum(1 for wall in receipts.values() if wall <= result["load_end"])
    post_ms = [1000 * (s.end - s.start) for s in load.sent if s.end]
    return {
        "subscriptions": ctx["subscriptions"], "mode": args.mode_label, "posted": len(load.sent),
        "accepted": len(accepted), "expected": result["expected"], "received": len(receipts),
        "accounts_rate": len(accepted) / load_seconds, "deliveries_rate": len(receipts) / max(1e-6, last - first),
        "deliveries_in_load_rate": in_load / load_seconds, "backlog": result["expected"] - in_load,
        "drain": max(0.0, last - result["load_end"]), "not_received": result["expected"] - len(receipts),
        "duplicates": duplicates, "unexpected": unexpected, "drained": result["drained"],
        "e2e": {p: pct(latency, p) for p in (50, 90, 99, 100)}, "post": {p: pct(post_ms, p) for p in (50, 99)},
        "stages": {name: (pct(v, 50), pct(v, 99)) for name, v in stages.items()},
        "negative": sum(1 for v in latency if v < 0), "failures": dict(failures),
        "checked": result["taken"]["checked"], "usage": result["usage"], "others": result["others"],
        "jobs": [(record[1], record[4]) for record in result["taken"]["records"] if record[3] == 200],
    }


# ---------------------------------------------------------------------------------------- raw baseline


async def raw_posts(port: int, jobs: list[tuple[str, str]], secrets: dict[str, str], concurrency: int,
                    roots: dict[str, list[int]], database: str) -> dict[str, Any]:
    """The same bodies to the same receiver, signed as the worker signs them, from `concurrency` senders."""
    import httpx

    from core.signatures import sign

    latencies: list[float] = []
    errors: Counter[str] = Counter()

    async def post(http: httpx.AsyncClient, hook: str, body: bytes) -> None:
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                   "Payments-Signature": sign([secrets[hook]], body, int(time.time())),
                   "Payments-Event-Id": str(uuid.uuid4()), "Payments-Delivery-Id": str(uuid.uuid4()),
                   "Payments-Delivery-Attempt": "1", "X-Request-ID": uuid.uuid4().hex}
        started = time.monotonic()
        try:
            answer = await http.post(f"/hook/{hook}", content=body, headers=headers)
            if 200 <= answer.status_code < 300:
                latencies.append(1000 * (time.monotonic() - started))
            else:
                errors[f"HTTP {answer.status_code}"] += 1
        except httpx.HTTPError as error:
            errors[type(error).__name__] += 1

    async def sender(http: httpx.AsyncClient, work: list[tuple[str, bytes]]) -> None:
        while work:
            await post(http, *work.pop())

    encoded = [(hook, body.encode()) for hook, body in jobs]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=10,
                                 trust_env=False, follow_redirects=False) as http:
        warm = list(reversed(encoded[:200]))
        await asyncio.gather(*(sender(http, warm) for _ in range(concurrency)))
        await control(port, "POST", "/_take")
        latencies.clear()
        errors.clear()
        work = list(reversed(encoded))
        sampler = pay.CpuSampler(roots, database)
        sampler.start()
        started = time.monotonic()
        await asyncio.gather(*(sender(http, work) for _ in range(concurrency)))
        elapsed = time.monotonic() - started
        usage = sampler.stop()
    taken = await control(port, "POST", "/_take")
    received = sum(1 for record in taken["records"] if record[3] == 200)
    return {"posts": len(encoded), "received": received, "rate": len(latencies) / max(1e-6, elapsed),
            "p50": pay.pct(latencies, 50), "p99": pay.pct(latencies, 99), "errors": dict(errors),
            "bad": taken["bad"], "checked": taken["checked"], "concurrency": concurrency, "usage": usage,
            "others": sampler.others}


# ---------------------------------------------------------------------------------------- one case


async def subscribe(base_url: str, key: str, receiver_port: int, count: int) -> dict[str, tuple[str, str]]:
    """`count` subscriptions to account.created: hook number -> (subscription id, secret)."""
    import httpx

    hooks = {}
    async with httpx.AsyncClient(base_url=base_url, timeout=30, trust_env=False,
                                 headers={"Authorization": f"Bearer {key}"}) as http:
        for number in range(1, count + 1):
            answer = await http.post("/api/v1/webhooks", json={
                "url": f"http://127.0.0.1:{receiver_port}/hook/{number}", "events": [EVENT],
                "description": f"bench hook {number}"})
            if answer.status_code != 201:
                raise RuntimeError(f"creating a webhook answered {answer.status_code}: {answer.text}")
            hooks[str(number)] = (answer.json()["id"], answer.json()["secret"])
    return hooks


def case_run(args: argparse.Namespace, subscriptions: int, tmp_root: Path) -> dict[str, Any]:
    with pay.case(args, tmp_root, f"subs{subscriptions}-") as run:
        stack, database_url, name = run.stack, run.database_url, run.database
        api_port, receiver_port = base.free_port(), base.free_port()
        slots = {"PAYMENTS_WEBHOOKS_CONCURRENCY": str(args.webhooks_concurrency)} if args.webhooks_concurrency else {}
        env = pay.case_env(run, api_port, args.worker_concurrency,
                           PAYMENTS_WEBHOOKS_ALLOW_PRIVATE_URLS="true", **slots)  # the receiver is on 127.0.0.1
        key = base.create_key(env)
        stack.spawn("receiver", [sys.executable, str(Path(__file__).resolve()), "--receive", str(receiver_port)])
        pay.wait_http(f"http://127.0.0.1:{receiver_port}/_count", stack, "the receiver")
        base_url = pay.start_workers_and_api(run, env, args.workers, api_port)
        hooks = asyncio.run(subscribe(base_url, key, receiver_port, subscriptions))
        secrets = {hook: secret for hook, (_, secret) in hooks.items()}
        asyncio.run(control(receiver_port, "POST", "/_setup", {"secrets": secrets,
                                                                "verify_every": args.verify_every}))
        ctx = {"database_url": database_url, "database": name, "base_url": base_url, "key": key,
               "receiver_port": receiver_port, "subscriptions": subscriptions,
               "hooks": {hook: sub for hook, (sub, _) in hooks.items()}}
        print(f"\n== {subscriptions} subscription(s), {args.workers} worker process(es): database {name}, "
              f"Redis db {run.redis_db}, receiver on :{receiver_port}", flush=True)
        if args.warmup > 0:
            warm = asyncio.run(run_load(args, ctx, args.warmup, None))
            print(f"   warm-up: {len(warm['load'].sent)} POSTs, {len(warm['taken']['records'])} deliveries, "
                  f"drained={warm['drained']}", flush=True)
            if not warm["drained"]:
                run.problems.append("the warm-up's deliveries had not all arrived when the run started")
        base.checkpoint(database_url)
        stack.check()
        base.wait_for_quiet(args.quiet_wait)
        roots = stack.roots("receiver")
        result = asyncio.run(run_load(args, ctx, args.duration, roots))
        stack.check()
        ids = [s.account_id for s in result["load"].sent if s.account_id]
        row = summarize(result, asyncio.run(read_rows(database_url, ids)), ctx, args)
        pay.note_dead_letters(database_url, row)
        print(render_text([row]).splitlines()[-1], flush=True)
        if not args.no_raw and row["jobs"]:
            concurrency = (args.worker_concurrency or 8) * args.workers
            print(f"   raw baseline: {len(row['jobs'])} signed POSTs, {concurrency} concurrent senders", flush=True)
            base.wait_for_quiet(args.quiet_wait)
            row["raw"] = asyncio.run(raw_posts(receiver_port, row["jobs"], secrets, concurrency,
                                               {"receiver": [stack.procs["receiver"].pid]}, name))
            print(f"   raw: {row['raw']['rate']:.0f} POSTs/s, p50 {row['raw']['p50']:.1f} ms, "
                  f"errors {row['raw']['errors'] or 'none'}", flush=True)
    row.pop("jobs", None)
    return pay.finish_row(row, run)


# --------------------------------------------------------------------------------------------- reports


MAIN_COLUMNS = ("subs", "load", "accounts/s", "deliveries/s", "deliveries/s in load", "e2e p50 ms", "e2e p90 ms",
                "e2e p99 ms", "e2e max ms", "POST p50 ms", "POST p99 ms", "backlog at stop", "not received",
                "failures", "raw POSTs/s", "÷ raw")
DETAIL_COLUMNS = ("subs", "relay p50/p99 ms", "dispatch p50/p99 ms", "deliver p50/p99 ms", "record p50/p99 ms",
                  "API CPU%", "worker CPU%", "receiver CPU%", "DB CPU%", "Redis CPU%", "gen CPU%", "other CPU%",
                  "CPU ms/delivery", "worker ms/delivery", "signatures checked", "raw p50/p99 ms",
                  "raw receiver/gen CPU%")


def main_cells(row: dict[str, Any]) -> list[str]:
    raw = row.get("raw")
    e2e, post = row["e2e"], row["post"]
    failures = ", ".join(f"{k}: {v}" for k, v in row["failures"].items()) or "none"
    return [str(row["subscriptions"]), row["mode"], f"{row['accounts_rate']:.0f}", f"{row['deliveries_rate']:.0f}",
            f"{row['deliveries_in_load_rate']:.0f}", *(f"{e2e[p]:.0f}" for p in (50, 90, 99, 100)),
            f"{post[50]:.1f}", f"{post[99]:.1f}", str(row["backlog"]), str(row["not_received"]), failures,
            f"{raw['rate']:.0f}" if raw else "-",
            f"{row['deliveries_rate'] / raw['rate']:.2f}" if raw and raw["rate"] else "-"]


def detail_cells(row: dict[str, Any]) -> list[str]:
    u, raw = row["usage"], row.get("raw")
    ours = sum(u.get(k, 0.0) for k in ("api", "worker", "receiver", "db", "redis"))
    per_delivery = 10 * ours * u.get("seconds", 0.0) / max(1, row["received"])
    return [str(row["subscriptions"]),
            *(f"{row['stages'][s][0]:.0f} / {row['stages'][s][1]:.0f}" for s in ("relay", "dispatch", "deliver",
                                                                                   "record")),
            *(f"{u.get(k, 0.0):.0f}" for k in ("api", "worker", "receiver", "db", "redis", "gen", "other")),
            f"{per_delivery:.1f}", f"{10 * u.get('worker', 0.0) * u.get('seconds', 0.0) / max(1, row['received']):.1f}",
            f"{row['checked']} (bad {row['failures'].get('bad signatures', 0)})",
            f"{raw['p50']:.1f} / {raw['p99']:.1f}" if raw else "-",
            f"{raw['usage']['receiver']:.0f} / {raw['usage']['gen']:.0f}" if raw else "-"]


def render_text(rows: list[dict[str, Any]]) -> str:
    return pay._text(MAIN_COLUMNS, [main_cells(r) for r in rows])


def render_all(rows: list[dict[str, Any]], markdown: bool) -> str:
    table = pay._markdown if markdown else pay._text
    return "\n".join([table(MAIN_COLUMNS, [main_cells(r) for r in rows]), "",
                      table(DETAIL_COLUMNS, [detail_cells(r) for r in rows])])


LEGEND = """accounts/s: 201s per second of load; deliveries/s: distinct deliveries received / (last receipt -
first POST); deliveries/s in load: received during the load window / its length; backlog at stop: deliveries
expected (accounts x subscriptions) not yet received when the load stopped; not received: still missing after the
drain. e2e = receipt (receiver's clock) - the 201 answer (this script's clock), same host. Stages (p50 / p99 over
deliveries): relay = outbox created_at -> published_at, dispatch = -> webhook_deliveries.created_at, deliver = ->
receipt, record = -> delivered_at. CPU in % of one core from the start of the load to the end of the drain; CPU
ms/delivery counts API, workers, receiver, DB and Redis; worker ms/delivery the worker processes alone. raw: the
same bodies, signed, POSTed from one httpx client with the worker's concurrency to the same receiver (no API,
database, Redis or Dramatiq); ÷ raw = deliveries/s / raw POSTs/s. gen = this script (load, watcher, raw client)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    pay.add_server_args(parser)
    parser.add_argument("--subscriptions", default="1,2", help="subscription counts to run, comma-separated")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of load per run (default: %(default)s)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of unrecorded load first")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--in-flight", type=int,
                       help="closed loop end to end: N clients, each waiting for its deliveries (the default, 16)")
    group.add_argument("--clients", type=int, help="closed loop on the POST: N clients POSTing back to back")
    group.add_argument("--rate", type=float, help="open loop: POSTs per second")
    parser.add_argument("--poll-ms", type=float, default=10.0,
                        help="in-flight mode: how often the receiver's new records are fetched (default: %(default)s)")
    parser.add_argument("--max-outstanding", type=int, default=64, help="open loop: most POSTs in flight")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default: %(default)s)")
    parser.add_argument("--worker-concurrency", type=int, default=0,
                        help="PAYMENTS_WORKER_CONCURRENCY (default: the product's, 8); also the raw baseline's senders")
    parser.add_argument("--webhooks-concurrency", type=int, default=0,
                        help="PAYMENTS_WEBHOOKS_CONCURRENCY, each worker's POSTs in flight (default: the product's, 4)")
    parser.add_argument("--drain-timeout", type=float, default=60.0,
                        help="after the load, wait at most this long for the deliveries (default: %(default)s)")
    parser.add_argument("--verify-every", type=int, default=10,
                        help="the receiver checks the signature of every Nth delivery per hook (default: %(default)s)")
    parser.add_argument("--no-raw", action="store_true", help="skip the raw baseline")
    parser.add_argument("--quiet-wait", type=float, default=30.0,
                        help="before each run, wait at most this long for other work on the machine to stop")
    pay.add_output_args(parser)
    parser.add_argument("--receive", type=int, metavar="PORT", help=argparse.SUPPRESS)  # the receiver process
    return pay.finish_args(parser.parse_args(argv))


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.receive is not None:
        return receiver_main(args.receive)
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM cleans up as Ctrl-C does: processes, database, Redis
    pay.install_uvloop()
    counts = [int(x) for x in args.subscriptions.split(",") if x.strip()]
    facts = pay.machine_facts(args)
    rows: list[dict[str, Any]] = []
    with pay.runs_dir("payments-bench-webhooks-", args.keep_logs) as tmp:
        for count in counts:
            rows.append(case_run(args, count, tmp))
    print(pay.facts_line(facts, f"{args.workers} worker process(es), concurrency {facts['worker_concurrency']}",
                         args))
    print(render_all(rows, markdown=False))
    print("\n" + LEGEND)
    for row in rows:
        where = f"{row['subscriptions']} subscription(s)"
        if row["not_received"]:
            print(f"WARNING {where}: {row['not_received']} delivery(ies) not received after the drain "
                  f"({args.drain_timeout:g} s)")
        if row["duplicates"] or row["unexpected"]:
            print(f"NOTE {where}: {row['duplicates']} duplicate and {row['unexpected']} unexpected deliveries "
                  "(at least once: duplicates are allowed, not counted twice)")
        if row["negative"]:
            print(f"WARNING {where}: {row['negative']} deliveries received before their 201 was read")
        for problem in row["problems"]:
            print(f"WARNING {where}: {problem}")
        pay.warn_disturbed(where, row)
        raw = row.get("raw")
        if raw and (raw["errors"] or raw["bad"] or raw["received"] != raw["posts"]):
            print(f"WARNING {where}: raw baseline: {raw['received']} of {raw['posts']} received, errors "
                  f"{raw['errors'] or 'none'}, bad signatures {raw['bad']}")
    pay.write_files(args, facts, rows, render_all)
    return 0


if __name__ == "__main__":
    sys.exit(main())

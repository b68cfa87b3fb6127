"""The scenarios: what each injects into a stack under load, and what it asserts of its own besides the common
post-conditions (tests/chaos/checks.py, run by tests/chaos/play.py)."""

from __future__ import annotations

import asyncio
from collections import Counter

from tests.chaos import hostile
from tests.chaos.checks import Verdict, verdict
from tests.chaos.harness import HOOK_PATH
from tests.chaos.model import Run, Scenario


def _felt(run: Run) -> list[Verdict]:
    seen = run.notes.get("ready", [])
    return [Verdict("the fault was felt: /health/ready answered 503", 503 in seen, str(Counter(seen))),
            Verdict("ready again afterwards", bool(seen) and seen[-1] == 200, str(seen[-3:]))]


async def _restart_postgres(run: Run) -> None:
    async with run.stack.readiness_watch() as seen:
        for _ in range(run.profile.repeats):
            await run.stack.restart_postgres()
            run.recovered()
            await asyncio.sleep(1.0)
    run.notes["ready"] = seen


async def _restarted(run: Run) -> list[Verdict]:
    return _felt(run)


async def _postgres_outage(run: Run) -> None:
    before = run.load.observed.count("transfer", 503)
    async with run.stack.readiness_watch() as seen:
        await run.stack.postgres_outage(run.profile.outage)
        run.recovered()
        await asyncio.sleep(2.0)
    run.notes["ready"], run.notes["503"] = seen, run.load.observed.count("transfer", 503) - before


async def _answered_503(run: Run) -> list[Verdict]:
    return [*_felt(run), Verdict("writes answered 503 with Retry-After while it was down", run.notes["503"] > 0,
                                 f"{run.notes['503']} transfer 503s")]


async def _restart_redis(run: Run) -> None:
    observed, redis = run.load.observed, run.stack.iso.redis
    async with run.stack.readiness_watch() as seen:
        redis.stop()  # SIGKILL; nothing on disk: queued and scheduled messages are lost
        try:
            before = len(observed.transfers) + len(observed.payments)
            await asyncio.sleep(run.profile.redis_down)
            run.notes["served"] = len(observed.transfers) + len(observed.payments) - before
        finally:
            await asyncio.to_thread(redis.start)
        run.recovered()
        await asyncio.sleep(1.0)
    run.notes["ready"] = seen


async def _served_without_redis(run: Run) -> list[Verdict]:
    return [*_felt(run), Verdict("transfers and payments acknowledged while Redis was down", run.notes["served"] > 0,
                                 f"{run.notes['served']} acknowledged")]


async def _kill_worker(run: Run) -> None:
    """SIGKILL the worker while a provider call is under way (a payment `processing`), then start it again."""
    run.notes["in_flight"], run.notes["processing"] = [], []
    for _ in range(run.profile.repeats):
        async with run.stack.database() as db:
            for _ in range(500):  # a payment is `processing` for at least the mock's 300 ms
                rows = await db.fetch("SELECT id::text, status FROM payments WHERE status IN ('pending', 'processing')")
                if any(row["status"] == "processing" for row in rows):
                    break
                await asyncio.sleep(0.02)
        await run.stack.kill(run.stack.iso.workers[0], 1.0)
        run.recovered()
        run.notes["in_flight"] += [row["id"] for row in rows]
        run.notes["processing"].append(sum(row["status"] == "processing" for row in rows))
        await asyncio.sleep(2.0)


async def _in_flight_finished(run: Run) -> list[Verdict]:
    async with run.stack.database() as db:
        rows = await db.fetch("SELECT id::text, status FROM payments WHERE id = ANY($1::uuid[])",
                              run.notes["in_flight"])
    open_ = [f"{r['id']} {r['status']}" for r in rows if r["status"] in {"pending", "processing"}]
    processing: list[int] = run.notes["processing"]
    return [Verdict("each kill hit a provider call under way", all(processing), f"processing at the kills: "
                    f"{processing}"),
            verdict("payments in flight at the kills finished", open_, f"{len(rows)} in flight, all final")]


async def _kill_api(run: Run) -> None:
    api = run.stack.iso.api
    for _ in range(run.profile.repeats):
        await run.stack.kill(api, 1.0, ready_url=f"{run.stack.iso.base_url}/health/ready")
        run.recovered()
        await asyncio.sleep(1.0)


async def _connections_dropped(run: Run) -> list[Verdict]:
    dropped = sum(n for (_, status), n in run.load.observed.answers.items() if status == -1)
    return [Verdict("the kill was felt: connections dropped, retried with their keys", dropped > 0, f"{dropped}")]


async def _provider_outage(run: Run) -> None:
    """Every provider call fails; note, per provider, the payments made before its breaker was seen open."""
    stack, payments = run.stack, run.load.observed.payments
    loop = asyncio.get_running_loop()
    opened: dict[str, set[str]] = {}
    await stack.provider_failure_rate(1.0)
    try:
        deadline = loop.time() + run.profile.outage
        while loop.time() < deadline:
            for provider, state in (await stack.breaker_states()).items():
                if state == 2 and provider not in opened:
                    opened[provider] = set(payments)
            await asyncio.sleep(0.2)
        run.notes["during"] = set(payments)
    finally:
        await stack.provider_failure_rate(0.0)
    run.recovered()
    run.notes["opened"] = opened


async def _waited_for_the_breaker(run: Run) -> list[Verdict]:
    """A payment made while its provider's breaker was open waits for it, spending no attempt, and completes."""
    opened: dict[str, set[str]] = run.notes["opened"]
    waited = [p for p in run.load.observed.payments.values() if p.provider in opened
              and p.id not in opened[p.provider] and p.id in run.notes["during"] and p.outcome != "decline"]
    async with run.stack.database() as db:
        rows = await db.fetch("SELECT id::text, status, failure_reason FROM payments WHERE id = ANY($1::uuid[])",
                              [p.id for p in waited])
    failed = [f"{r['id']} {r['status']}: {r['failure_reason']}" for r in rows
              if r["status"] not in {"completed", "partially_refunded", "refunded"}]  # the load refunds some
    return [Verdict("the breaker opened for both providers", set(opened) == {"stripe", "paypal"}, str(sorted(opened))),
            verdict("payments made while it was open waited and completed", failed, f"{len(rows)} completed")]


async def _receiver_outage(run: Run) -> None:
    run.stack.receiver.down()
    try:
        await asyncio.sleep(run.profile.outage)
    finally:
        run.stack.receiver.up()
    run.recovered()


async def _deliveries_retried(run: Run) -> list[Verdict]:
    tried = [r for r in run.stack.receiver.at(HOOK_PATH) if r.headers.get("payments-delivery-attempt", "1") != "1"]
    return [Verdict("deliveries were retried until the receiver was back", bool(tried), f"{len(tried)} retries")]


HOT_CLIENTS, HOLD = 16, 2.0


async def _hot_account(run: Run) -> None:
    """HOT_CLIENTS clients at once (no pause) on one account whose row a long transaction holds HOLD seconds now
    and then (a slow report, a stuck batch), against a pool of 4 connections; the regular load goes on."""
    load, observed = run.load, run.load.observed
    hot, partners = await load.open_account(), [await load.open_account() for _ in range(3)]
    stop = asyncio.Event()

    async def storm(i: int) -> None:
        partner = partners[i % len(partners)]
        while not stop.is_set():
            await (load.transfer(hot, partner, 1, "hot") if i % 2 else load.transfer(partner, hot, 1, "hot"))

    async def hold() -> None:
        async with run.stack.database() as db:
            while not stop.is_set():
                async with db.transaction():
                    await db.execute("SELECT 1 FROM accounts WHERE id = $1::uuid FOR UPDATE", hot)
                    await asyncio.sleep(HOLD)
                await asyncio.sleep(HOLD / 2)

    cold_before = Counter({s: n for (kind, s), n in observed.answers.items() if kind == "transfer"})
    tasks = [asyncio.create_task(storm(i)) for i in range(HOT_CLIENTS)] + [asyncio.create_task(hold())]
    await asyncio.sleep(run.profile.outage)
    stop.set()
    await asyncio.gather(*tasks)
    run.recovered()
    cold = Counter({s: n for (kind, s), n in observed.answers.items() if kind == "transfer"})
    cold.subtract(cold_before)
    run.notes["cold"] = +cold


async def _cold_served(run: Run) -> list[Verdict]:
    cold: Counter[int] = run.notes["cold"]
    hot = run.load.observed.count("hot", 201)
    return [Verdict("the hot account's transfers went through", hot > 0, f"{hot} hot transfers"),
            Verdict("other accounts' transfers answered 201 throughout", set(cold) == {201}, str(dict(cold)))]


async def _hostile(run: Run) -> None:
    answers: list[hostile.Answer] = []
    for _ in range(run.profile.repeats):
        answers += await hostile.battery(run.load)
    run.notes["answers"], run.notes["raced"] = answers, await hostile.raced_key(run.load)
    run.recovered()


async def _hostile_refused(run: Run) -> list[Verdict]:
    raced: list[str] = run.notes["raced"]
    answers: list[hostile.Answer] = run.notes["answers"]
    return [verdict("every hostile request refused with a 4xx problem", hostile.judge(answers),
                    f"{len(answers)} answered: {dict(Counter(a.status for a in answers))}"),
            Verdict(f"{hostile.RACERS} racing requests with one key: one transfer", len(set(raced)) == 1,
                    f"{len(raced)} answers 201, ids {sorted(set(raced))}")]


SCENARIOS = [
    Scenario("postgres_restart", "PostgreSQL restarted (pg_ctl restart -m fast) {repeats}× under load",
             "/health/ready went 503 and came back", _restart_postgres, _restarted),
    Scenario("postgres_outage", "PostgreSQL crashes (stop -m immediate), down {outage:g} s, restarts (WAL recovery)",
             "writes answered 503 + Retry-After meanwhile", _postgres_outage, _answered_503),
    Scenario("redis_restart", "Redis SIGKILLed, down {redis_down:g} s, restarted empty (queues and metrics lost)",
             "API kept acknowledging writes without Redis", _restart_redis, _served_without_redis),
    Scenario("worker_kill", "the worker SIGKILLed mid-payment (provider latency 300 ms) {repeats}×, back after 1 s",
             "payments in flight at the kill all final", _kill_worker, _in_flight_finished,
             mock_env={"PAYMENTS_MOCK_LATENCY": "300ms"}),
    Scenario("api_kill", "the API SIGKILLed under load {repeats}×, restarted after 1 s",
             "dropped requests retried with their keys: each applied once", _kill_api, _connections_dropped,
             dropped_allowed=True),
    Scenario("provider_down", "the mock providers fail 100 % of calls for {outage:g} s, then recover",
             "both breakers opened; payments made meanwhile waited and completed", _provider_outage,
             _waited_for_the_breaker),
    Scenario("receiver_down", "the webhook receiver down (connection refused) {outage:g} s, then back on its port",
             "deliveries retried, then all succeeded", _receiver_outage, _deliveries_retried),
    Scenario("hot_account", f"{HOT_CLIENTS} clients at once on one account for {{outage:g}} s, its row held {HOLD:g} s "
             "at a time by a long transaction; API pool of 4 connections, 1 s acquire timeout",
             "hot transfers went through; other accounts answered 201 throughout", _hot_account, _cold_served,
             api_env={"PAYMENTS_DATABASE_POOL_MAX": "4", "PAYMENTS_DATABASE_ACQUIRE_TIMEOUT": "1s"}),
    Scenario("hostile_inputs", "malformed, oversized, out-of-range and injection-shaped requests, raw protocol "
             f"garbage ({{repeats}}×), {hostile.RACERS} requests racing one Idempotency-Key",
             "each refused 4xx problem+json; the raced key moved money once", _hostile, _hostile_refused),
]
BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}
COMMON = ("no 500; every acknowledged write readable and exact; payments final or progressing; outbox drained "
          "within 30 s of recovery; ledger check clean; breaker closed; webhooks delivered")


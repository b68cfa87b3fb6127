"""What must hold after every fault, once the stack is healthy again; each check gives a `Verdict`, so that a run
reports every broken promise at once, not only the first."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import attrs

from tests.chaos.harness import HOOK_PATH, ChaosStack
from tests.chaos.load import Load, Observed, major
from tests.e2e.helpers import API, all_pages
from tests.e2e.payflow import TERMINAL
from tests.e2e.test_resilience import cli

OUTBOX_WITHIN = 30.0  # seconds after recovery by which every row committed before it is published
SETTLE_WITHIN = 60.0  # seconds after the load stops by which every payment and refund is final, or else...
PROGRESS_WATCH = 10.0  # ...still changing over this many more seconds (progressing, not stuck)
DELIVERED_WITHIN = 90.0  # webhooks: more than the 60 s lease of a delivery whose worker was killed mid-POST
DEBITED = {"pending", "processing", "completed", "partially_refunded", "refunded"}  # money out of the source


@attrs.frozen
class Verdict:
    check: str
    ok: bool
    detail: str = ""


def verdict(check: str, problems: list[str], fine: str = "") -> Verdict:
    shown = "; ".join(problems[:5]) + (f"; ... ({len(problems)} in all)" if len(problems) > 5 else "")
    return Verdict(check, not problems, shown if problems else fine)


async def poll(condition: Callable[[], Awaitable[bool]], deadline: float, every: float = 0.25) -> bool:
    """Await `condition` until it holds (True) or the loop time passes `deadline` (False)."""
    loop = asyncio.get_running_loop()
    while True:
        if await condition():
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(every)


async def outbox_drained(stack: ChaosStack, recovered_loop: float) -> Verdict:
    """Within OUTBOX_WITHIN seconds of the recovery, the relay has caught up: no row committed more than a second
    earlier is left unpublished. Looked at from 2 s after the recovery on, so that the rows the load commits
    meanwhile (while the relay may still be backing off from the outage) count too."""
    left: list[int] = [-1]

    async def drained() -> bool:
        try:
            async with stack.database() as db:
                left[0] = await db.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL "
                                            "AND created_at < now() - interval '1 second'")
        except Exception:  # the database may still be coming back: not drained yet
            return False
        return left[0] == 0

    await asyncio.sleep(max(0.0, recovered_loop + 2.0 - asyncio.get_running_loop().time()))
    ok = await poll(drained, recovered_loop + OUTBOX_WITHIN)
    took = asyncio.get_running_loop().time() - recovered_loop
    return Verdict("outbox drained within 30 s of recovery", ok,
                   f"caught up {took:.1f} s after recovery" if ok else f"{left[0]} row(s) still unpublished")


async def outbox_empty(stack: ChaosStack) -> Verdict:
    """Once the load has stopped, nothing is left unpublished."""
    async def empty() -> bool:
        async with stack.database() as db:
            return bool(await db.fetchval("SELECT count(*) = 0 FROM outbox WHERE published_at IS NULL"))
    ok = await poll(empty, asyncio.get_running_loop().time() + OUTBOX_WITHIN)
    return Verdict("outbox empty after the load", ok)


def answers(observed: Observed, dropped_allowed: bool) -> list[Verdict]:
    dropped = sum(n for (_, status), n in observed.answers.items() if status == -1)
    return [verdict("no 500 and no unexpected answer", observed.troubles),
            verdict("no dropped connection", [] if dropped_allowed or not dropped else [f"{dropped} dropped"],
                    f"{dropped} dropped (expected here)" if dropped else ""),
            verdict("every write answered (retried with its key)", observed.lost)]


async def breaker_recovered(stack: ChaosStack, load: Load) -> Verdict:
    """A new payment through each provider completes, and every breaker then reads closed."""
    probes = [await load.pay(load.pool[0], 100, provider) for provider in ("stripe", "paypal")]
    statuses: dict[str, str] = {}

    async def completed() -> bool:
        async with stack.database() as db:
            rows = await db.fetch("SELECT id::text, status FROM payments WHERE id = ANY($1::uuid[])", probes)
        statuses.update({row["id"]: row["status"] for row in rows})
        return all(statuses.get(probe) == "completed" for probe in probes)

    done = all(probes) and await poll(completed, asyncio.get_running_loop().time() + SETTLE_WITHIN)
    states = await stack.breaker_states()
    problems = ([] if done else [f"probe payments {statuses}"]) + [
        f"{provider} breaker {state:g}" for provider, state in states.items() if state != 0]
    return verdict("breaker closed again", problems, f"states {states}")


async def readable(load: Load) -> Verdict:
    """Every acknowledged write reads back through the API with the amounts and accounts it was made with."""
    observed, problems = load.observed, []
    gate = asyncio.Semaphore(4)

    async def get(path: str) -> dict[str, Any] | None:
        async with gate:
            answer = await load.client.get(path)
        if answer.status_code != 200:
            problems.append(f"GET {path}: {answer.status_code}")
            return None
        body: dict[str, Any] = answer.json()
        return body

    async def payment(pid: str, source: str, destination: str | None, amount: int) -> None:
        got = await get(f"{API}/payments/{pid}")
        if got is not None and (got["source_account_id"], got["destination_account_id"], got["amount"]) != (
                source, destination, major(amount)):
            problems.append(f"payment {pid} reads {got}")

    async def refunds(pid: str) -> None:
        got = await get(f"{API}/payments/{pid}/refunds?limit=100")
        listed = {r["id"]: r["amount"] for r in (got or {}).get("data", [])}
        for refund in (r for r in observed.refunds.values() if r.payment_id == pid):
            if listed.get(refund.id) != major(refund.amount):
                problems.append(f"refund {refund.id} of {pid}: listed {listed}")

    await asyncio.gather(
        *(get(f"{API}/accounts/{account}") for account in observed.accounts),
        *(payment(t.id, t.source, t.destination, t.amount) for t in observed.transfers.values()),
        *(payment(p.id, p.source, None, p.amount) for p in observed.payments.values()),
        *(refunds(pid) for pid in {r.payment_id for r in observed.refunds.values()}))
    return verdict("every acknowledged write readable, amounts intact", problems,
                   f"{observed.acknowledged()} writes: {len(observed.transfers)} transfers, {len(observed.payments)} "
                   f"payments, {len(observed.refunds)} refunds, {len(observed.accounts)} accounts")


async def _states(stack: ChaosStack, observed: Observed) -> dict[str, tuple[str, datetime]]:
    async with stack.database() as db:
        rows = [*await db.fetch("SELECT id::text, status, updated_at FROM payments WHERE id = ANY($1::uuid[])",
                                list(observed.payments)),
                *await db.fetch("SELECT id::text, status, updated_at FROM refunds WHERE id = ANY($1::uuid[])",
                                list(observed.refunds))]
    return {row["id"]: (row["status"], row["updated_at"]) for row in rows}


async def settled(stack: ChaosStack, load: Load) -> Verdict:
    """Every external payment and refund is final within SETTLE_WITHIN, or visibly moving (not stuck)."""
    observed, states = load.observed, dict[str, tuple[str, datetime]]()

    def unfinished() -> dict[str, tuple[str, datetime]]:
        return {i: s for i, s in states.items() if s[0] not in TERMINAL | {"succeeded"}}

    async def final() -> bool:
        states.update(await _states(stack, observed))
        return not unfinished()

    if await poll(final, asyncio.get_running_loop().time() + SETTLE_WITHIN, every=0.5):
        return Verdict("every payment final or progressing", True, f"{len(states)} final")
    before = unfinished()
    await asyncio.sleep(PROGRESS_WATCH)
    states.update(await _states(stack, observed))
    stuck = [i for i, state in unfinished().items() if before.get(i) == state]
    problems = []
    for pid in stuck[:3]:
        events = (await load.client.get(f"{API}/payments/{pid}/events")).json().get("data", [])
        problems.append(f"{pid} stuck {states[pid][0]}: {[(e['type'], e['data'].get('error')) for e in events]}")
    return verdict("every payment final or progressing", [*problems, f"stuck: {stuck}"] if stuck else [],
                   f"{len(before)} still progressing after {SETTLE_WITHIN:g} s")


async def money(stack: ChaosStack, observed: Observed) -> Verdict:
    """In one snapshot of the database: the tenant's payments and refunds are exactly the acknowledged ones (none
    lost, none applied twice), and each account's balance is what the acknowledged writes make it."""
    async with stack.database() as db, db.transaction(isolation="repeatable_read", readonly=True):
        tenant = await db.fetchval("SELECT tenant_id FROM accounts WHERE id = $1::uuid", next(iter(observed.accounts)))
        payments = {r["id"]: r for r in await db.fetch(
            "SELECT id::text, status, amount FROM payments WHERE tenant_id = $1", tenant)}
        refunds = {r["id"]: r for r in await db.fetch(
            "SELECT id::text, status, amount, payment_id::text FROM refunds WHERE tenant_id = $1", tenant)}
        balances = {r["id"]: r["balance"] for r in await db.fetch(
            "SELECT id::text, balance FROM accounts WHERE tenant_id = $1 AND kind = 'user'", tenant)}
    acknowledged = {*observed.transfers, *observed.payments}
    problems = [f"payment {i} acknowledged, not in the database" for i in acknowledged - set(payments)]
    problems += [f"payment {i} in the database, never acknowledged" for i in set(payments) - acknowledged]
    problems += [f"refund {i}: acknowledged {observed.refunds.get(i)}, stored {refunds.get(i)}"
                 for i in set(refunds) ^ set(observed.refunds)]
    expected = dict(observed.accounts)
    for t in observed.transfers.values():
        expected[t.source] -= t.amount
        expected[t.destination] += t.amount
    for p in observed.payments.values():
        if p.id in payments and payments[p.id]["status"] in DEBITED:
            expected[p.source] -= p.amount
    for r in observed.refunds.values():
        if r.id in refunds and refunds[r.id]["status"] == "succeeded":
            expected[observed.payments[r.payment_id].source] += r.amount
    problems += [f"account {a}: balance {balances.get(a)}, the acknowledged writes make it {v}"
                 for a, v in expected.items() if balances.get(a) != v]
    amounts = {i: t.amount for i, t in observed.transfers.items()} | {i: p.amount for i, p in observed.payments.items()}
    problems += [f"{i}: amount {payments[i]['amount']}, acknowledged {amount}" for i, amount in amounts.items()
                 if i in payments and payments[i]["amount"] != amount]
    return verdict("exactly the acknowledged writes, balances exact", problems, f"{len(balances)} balances exact")


async def ledger_clean(stack: ChaosStack) -> Verdict:
    result = await asyncio.to_thread(cli, stack.iso, "ledger", "check")
    ok = result.returncode == 0 and "ledger ok" in result.stdout
    return Verdict("payments ledger check exits 0", ok, "" if ok else (result.stdout + result.stderr)[-800:])


async def webhooks_delivered(stack: ChaosStack, load: Load) -> Verdict:
    """Every final payment and refund was announced to the receiver, and the delivery log shows only successes."""
    async with stack.database() as db:
        rows = [*await db.fetch("SELECT id::text, status, 'payment' AS kind FROM payments WHERE id = ANY($1::uuid[])",
                                list(load.observed.payments)),
                *await db.fetch("SELECT id::text, status, 'refund' AS kind FROM refunds WHERE id = ANY($1::uuid[])",
                                list(load.observed.refunds))]
    named = {"partially_refunded": "completed", "refunded": "completed"}
    expected = {(f"{r['kind']}.{named.get(r['status'], r['status'])}", r["id"]) for r in rows
                if r["status"] not in {"pending", "processing"}}
    missing: set[tuple[str, str]] = set()
    log: list[dict[str, Any]] = []

    async def delivered() -> bool:
        bodies = [json.loads(request.body) for request in stack.receiver.at(HOOK_PATH)]
        missing.clear()
        missing.update(expected - {(b["type"], b["data"]["object"]["id"]) for b in bodies})
        log[:] = await all_pages(load.client, f"{API}/webhooks/{load.hook['id']}/deliveries", limit=100)
        return not missing and all(entry["status"] == "succeeded" for entry in log)

    ok = await poll(delivered, asyncio.get_running_loop().time() + DELIVERED_WITHIN, every=0.5)
    unsent = [e for e in log if e["status"] != "succeeded"]
    retried = sum(1 for e in log if e["attempts"] > 1)
    problems = [f"never received: {sorted(missing)[:5]}"] if missing else []
    problems += [f"{len(unsent)} deliveries not succeeded: {unsent[:2]}"] if unsent else []
    return verdict("webhooks delivered", [] if ok else problems,
                   f"{len(log)} deliveries succeeded, {retried} after more than one attempt")


def alive(stack: ChaosStack) -> Verdict:
    dead = [" ".join(p.args) for p in stack.processes if p.popen is None or p.popen.poll() is not None]
    return verdict("API, worker and mock providers still running", dead)

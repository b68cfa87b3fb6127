"""The mixed load of a chaos scenario: transfers, external payments (some declined, some failing once), refunds
of completed ones and new accounts, from a few clients, with a webhook subscription hearing the outcomes.

Each write is sent as a careful client sends it: with an Idempotency-Key, and retried with that same key after a
dropped connection, a 5xx, a 429 or a 409 `idempotency_request_in_progress`, until it gets a final answer. So
every write ends acknowledged (2xx, recorded with its id and amounts) or refused (4xx, a contract breach here),
and the checks can hold the database to exactly what the clients were told.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections import Counter
from decimal import Decimal
from typing import Any

import attrs
import httpx

from tests.chaos.harness import HOOK_PATH, ChaosStack
from tests.e2e.helpers import API

#: How long one write is retried before it is reported lost (a scenario's faults last seconds, not minutes).
RESOLVE_WITHIN = 120.0
RETRIED = {429, 500, 502, 503, 504}
INITIAL = 1_000_000_00  # minor units: no account of the load ever runs out
HOOK_EVENTS = ["payment.completed", "payment.failed", "refund.succeeded", "refund.failed"]
#: `metadata.mock_outcome` of the external payments, and how often each is chosen.
OUTCOMES = {"succeed": 8, "decline": 1, "fail_transient:1": 1}


def minor(amount: str) -> int:
    return int(Decimal(amount) * 100)  # the load moves USD only


def major(amount: int) -> str:
    return f"{Decimal(amount) / 100:.2f}"


@attrs.frozen
class Transfer:
    id: str
    source: str
    destination: str
    amount: int


@attrs.frozen
class Payment:
    id: str
    source: str
    amount: int
    provider: str
    outcome: str


@attrs.frozen
class Refund:
    id: str
    payment_id: str
    amount: int


@attrs.define
class Observed:
    """What the clients sent and were told. `answers` counts (what, status) with -1 for a dropped connection;
    `troubles` are answers that break the contract (5xx other than a 503 with Retry-After, an unexpected 4xx);
    `lost` are writes still unanswered after RESOLVE_WITHIN."""

    accounts: dict[str, int] = attrs.field(factory=dict)
    transfers: dict[str, Transfer] = attrs.field(factory=dict)
    payments: dict[str, Payment] = attrs.field(factory=dict)
    refunds: dict[str, Refund] = attrs.field(factory=dict)
    answers: Counter[tuple[str, int]] = attrs.field(factory=Counter)
    troubles: list[str] = attrs.field(factory=list)
    lost: list[str] = attrs.field(factory=list)

    def count(self, what: str, *statuses: int) -> int:
        return sum(n for (kind, status), n in self.answers.items() if kind == what and status in statuses)

    def acknowledged(self) -> int:
        return len(self.accounts) + len(self.transfers) + len(self.payments) + len(self.refunds)


def _retry(response: httpx.Response | None) -> bool:
    if response is None or response.status_code in RETRIED:
        return True
    return response.status_code == 409 and "idempotency_request_in_progress" in response.text


class Load:
    """The clients of one scenario on one tenant; `start` them, `stop` them (each finishes its current write)."""

    def __init__(self, client: httpx.AsyncClient, *, transfer_clients: int, pace: float) -> None:
        self.client = client
        self.observed = Observed()
        self.pool: list[str] = []  # the accounts the regular clients move money between
        self.hook: dict[str, Any] = {}
        self._clients, self._pace = transfer_clients, pace
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._refunded: set[str] = set()
        self._random = random.Random(secrets.randbits(32))  # a fresh mix each run; not a secret

    async def prepare(self, stack: ChaosStack, accounts: int = 6) -> Load:
        for _ in range(accounts):
            self.pool.append(await self.open_account())
        answer = await self.client.post(f"{API}/webhooks", json={"url": stack.receiver.url(HOOK_PATH),
                                                                 "events": HOOK_EVENTS})
        assert answer.status_code == 201, answer.text
        self.hook = answer.json()
        return self

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._transfers_forever()) for _ in range(self._clients)]
        self._tasks.append(asyncio.create_task(self._payments_forever()))

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def send(self, what: str, path: str, body: dict[str, Any], key: str | None = None) -> httpx.Response | None:
        """POST `body`, retried with its Idempotency-Key until a final answer; None if none came in time."""
        headers = {"Idempotency-Key": key or f"chaos-{secrets.token_hex(10)}"}
        loop = asyncio.get_running_loop()
        deadline, pause = loop.time() + RESOLVE_WITHIN, 0.05
        while True:
            response: httpx.Response | None
            try:
                response = await self.client.post(path, json=body, headers=headers)
            except httpx.TransportError:
                response = None
            self.observed.answers[(what, -1 if response is None else response.status_code)] += 1
            if response is not None and response.status_code >= 500 and not (
                    response.status_code == 503 and response.headers.get("Retry-After", "").isdigit()):
                self.observed.troubles.append(f"{what}: {response.status_code} {response.text[:500]}")
            if not _retry(response):
                assert response is not None
                return response
            if loop.time() > deadline:
                self.observed.lost.append(f"{what} {path} {body} (key {headers['Idempotency-Key']})")
                return None
            await asyncio.sleep(pause)
            pause = min(pause * 2, 1.0)

    def _refused(self, what: str, response: httpx.Response | None, expected: int) -> bool:
        if response is None:
            return True
        if response.status_code != expected:
            self.observed.troubles.append(f"{what}: expected {expected}, got {response.status_code} {response.text}")
            return True
        return False

    async def open_account(self, initial: int = INITIAL) -> str:
        response = await self.send("account", f"{API}/accounts", {"user_id": f"chaos-{secrets.token_hex(3)}",
                                                                  "currency": "USD", "initial_balance": major(initial)})
        if self._refused("account", response, 201):
            return ""
        assert response is not None
        account_id: str = response.json()["id"]
        self.observed.accounts[account_id] = initial
        return account_id

    async def transfer(self, source: str, destination: str, amount: int, what: str = "transfer") -> str:
        response = await self.send(what, f"{API}/transfers", {"source_account_id": source, "destination_account_id":
                                                              destination, "amount": major(amount), "currency": "USD"})
        if self._refused(what, response, 201):
            return ""
        assert response is not None
        payment_id: str = response.json()["id"]
        self.observed.transfers[payment_id] = Transfer(payment_id, source, destination, amount)
        return payment_id

    async def pay(self, source: str, amount: int, provider: str, outcome: str = "succeed") -> str:
        body = {"payment_type": "external_payment", "source_account_id": source, "amount": major(amount),
                "currency": "USD", "provider": provider, "metadata": {"mock_outcome": outcome}}
        response = await self.send("payment", f"{API}/payments", body)
        if self._refused("payment", response, 202):
            return ""
        assert response is not None
        payment_id: str = response.json()["id"]
        self.observed.payments[payment_id] = Payment(payment_id, source, amount, provider, outcome)
        return payment_id

    async def refund_one(self) -> None:
        """Refund half of a payment the load saw completed (each one once)."""
        candidates = [p for p in self.observed.payments.values() if p.id not in self._refunded and p.amount > 1]
        if not candidates:
            return
        payment = self._random.choice(candidates)
        try:
            status = (await self.client.get(f"{API}/payments/{payment.id}")).json().get("status")
        except (httpx.HTTPError, ValueError):
            return  # a read that fails during a fault is not a write; the next round tries another
        if status != "completed":
            return
        self._refunded.add(payment.id)
        amount = payment.amount // 2
        response = await self.send("refund", f"{API}/payments/{payment.id}/refund", {"amount": major(amount)})
        if not self._refused("refund", response, 202):
            assert response is not None
            refund_id: str = response.json()["id"]
            self.observed.refunds[refund_id] = Refund(refund_id, payment.id, amount)

    async def _transfers_forever(self) -> None:
        while not self._stop.is_set():
            source, destination = self._random.sample(self.pool, 2)
            await self.transfer(source, destination, self._random.randint(1, 500))
            await asyncio.sleep(self._pace)

    async def _payments_forever(self) -> None:
        """Mostly external payments; every fourth round a refund, every tenth a new account for the pool."""
        rounds = 0
        while not self._stop.is_set():
            rounds += 1
            if rounds % 10 == 0:
                if account := await self.open_account():
                    self.pool.append(account)
            elif rounds % 4 == 0:
                await self.refund_one()
            else:
                outcome = self._random.choices(list(OUTCOMES), weights=list(OUTCOMES.values()))[0]
                await self.pay(self._random.choice(self.pool), self._random.randint(100, 5000),
                               self._random.choice(["stripe", "paypal"]), outcome)
            await asyncio.sleep(self._pace * 2)

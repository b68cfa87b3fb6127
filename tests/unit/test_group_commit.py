"""The group commit (`PostingEngine`) on the in-memory store: requests waiting together share a transaction, each
with its own outcome; a failure of the whole group runs each request alone; a hot account's requests wait in
memory; a request queued too long is shed. (Same ledger as single postings: tests/unit/test_batches_property.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest

from adapters.memory import InMemoryLedgerAudit, InMemoryStore
from core.errors import IdempotencyKeyReused, IdempotencyRequestInProgress, Unavailable
from core.idempotency import IdempotentRequest, StoredResponse
from core.money import Money
from core.ports import UnitOfWork
from core.usecases.accounts import CreateAccount, create_account
from core.usecases.group_commit import PostingEngine
from core.usecases.holds import CreateHold, create_hold
from core.usecases.transfers import MakeTransfer, make_transfer
from tests.unit.conftest import FakeClock

TENANT = UUID("0191e5a0-0000-7000-8000-000000000002")


class World:
    """A store with accounts, an engine over it and the sizes of the groups it ran."""

    def __init__(self, *, transactions: int = 1, group_size: int = 64, queue_timeout: float = 30.0,
                 stall: float = 0.05) -> None:
        self.store, self.clock, self.sizes = InMemoryStore(), FakeClock(), []
        self.engine = PostingEngine(uow_factory=self.store, clock=self.clock, ttl=timedelta(hours=1),
                                    transactions=transactions, group_size=group_size, queue_timeout=queue_timeout,
                                    stall=stall, observe=self.sizes.append)

    async def accounts(self, *openings: int) -> list[UUID]:
        ids = []
        for n, opening in enumerate(openings):
            async with self.store() as uow:
                account = await create_account(CreateAccount(
                    tenant_id=TENANT, user_id=f"u{n}", currency="USD",
                    initial_balance=Money(opening, "USD") if opening else None), uow=uow, clock=self.clock)
            ids.append(account.id)
        return ids

    def send(self, key: str, source: UUID, destination: UUID, amount: int, *, fingerprint: bytes = b"f",
             before: Callable[[], Awaitable[Any]] | None = None) -> asyncio.Task[StoredResponse]:
        """Submit a transfer under `key` (its work awaits `before()` first) as a task."""
        cmd = MakeTransfer(tenant_id=TENANT, source_account_id=source, destination_account_id=destination,
                           amount=Money(amount, "USD"))

        async def work(uow: UnitOfWork) -> Any:
            if before is not None:
                await before()
            return await make_transfer(cmd, uow=uow, clock=self.clock)

        return asyncio.create_task(self.engine.run(
            work, request=IdempotentRequest(tenant_id=TENANT, key=key, fingerprint=fingerprint),
            render=lambda payment: StoredResponse(status=201, body=str(payment.id).encode()),
            render_error=lambda error: StoredResponse(status=422, body=error.code.encode()),
            lock_accounts=cmd.locked_accounts))

    async def holding(self, key: str, source: UUID, destination: UUID) -> tuple[asyncio.Task[StoredResponse],
                                                                               asyncio.Event]:
        """A transfer whose transaction stays open (started, alone) until the event is set."""
        hold = asyncio.Event()
        task = self.send(key, source, destination, 1, before=hold.wait)
        await asyncio.sleep(0)
        return task, hold

    def balances(self, ids: list[UUID]) -> list[int]:
        return [self.store.accounts[account].balance for account in ids]


async def test_requests_waiting_together_share_one_transaction_each_with_its_own_answer() -> None:
    world = World(transactions=1)
    a, b, c, d = await world.accounts(100, 0, 5, 0)
    sent = [world.send("k1", a, b, 10), world.send("k2", c, d, 50), world.send("k3", a, d, 20),
            world.send("k4", b, c, 5)]
    answers = await asyncio.gather(*sent)
    assert world.sizes == [1, 3]  # the first alone (nothing was running), the three that waited for it together
    assert [answer.status for answer in answers] == [201, 422, 201, 201]
    assert answers[1].body == b"insufficient_funds"
    assert world.balances([a, b, c, d]) == [70, 5, 10, 20]
    assert await InMemoryLedgerAudit(world.store).drift() == []
    # Every answer, the refusal too, was stored for its key with the group's commit: the same again is a replay.
    again = await world.send("k2", c, d, 50)
    assert (again.status, again.body, again.replayed) == (422, b"insufficient_funds", True)
    assert world.balances([c, d]) == [10, 20]


async def test_replays_reused_keys_and_keys_in_flight_answer_as_alone() -> None:
    world = World(transactions=1)
    a, b, c, d = await world.accounts(100, 0, 100, 0)
    first = await world.send("done", a, b, 10)
    blocker, hold = await world.holding("blocker", c, d)  # runs alone and holds the one transaction
    replayed = world.send("done", a, b, 10)
    reused = world.send("done-2", a, b, 10)
    await asyncio.sleep(0)
    with pytest.raises(IdempotencyRequestInProgress):  # the same key queued already: in progress at once
        await world.send("done-2", a, b, 10)
    hold.set()
    await blocker
    assert (await replayed).body == first.body and (await replayed).replayed
    assert (await reused).status == 201
    with pytest.raises(IdempotencyKeyReused):
        await world.send("done", a, b, 99, fingerprint=b"another request")
    assert world.balances([a, b]) == [80, 20]


async def test_a_group_that_fails_as_a_whole_runs_each_request_again_alone() -> None:
    world = World(transactions=1)
    a, b, c, d = await world.accounts(100, 0, 100, 0)
    blocker, hold = await world.holding("blocker", c, d)
    broken: list[bool] = [True]

    async def breaks_once() -> None:
        if broken.pop() if broken else False:
            raise RuntimeError("a bug in one request")

    sent = [world.send("ok-1", a, b, 10), world.send("bad", a, b, 5, before=breaks_once),
            world.send("ok-2", c, d, 7)]
    await asyncio.sleep(0)
    hold.set()
    await blocker
    answers = await asyncio.gather(*sent, return_exceptions=True)
    # The group of three failed (nothing of it was written); each then ran alone: the broken one succeeds now.
    assert world.sizes == [1, 3]
    assert [getattr(answer, "status", answer) for answer in answers] == [201, 201, 201]
    assert world.balances([a, b, c, d]) == [85, 15, 92, 8]
    assert await InMemoryLedgerAudit(world.store).drift() == []


async def test_a_wait_that_runs_out_in_a_group_fails_only_the_requests_it_concerns() -> None:
    """`Unavailable` in a group (say, one account's row held elsewhere past the bound): each request runs again
    alone, at once; only the one that meets the wait again fails, with nothing stored for its key."""
    world = World(transactions=1)
    a, b, c, d = await world.accounts(100, 0, 100, 0)
    blocker, hold = await world.holding("blocker", c, d)
    down = [True, True]

    async def waits_too_long() -> None:
        if down.pop() if down else False:
            raise Unavailable("the account's row stayed locked")

    sent = [world.send("x-1", a, b, 10), world.send("x-2", c, d, 5, before=waits_too_long)]
    await asyncio.sleep(0)
    hold.set()
    await blocker
    answers = await asyncio.gather(*sent)
    assert world.sizes == [1, 2]
    assert [(answer.status, answer.body) for answer in answers][1] == (422, b"service_unavailable")  # rendered,
    assert answers[0].status == 201  # as a transient error is (the API's problem is a 503), and never stored
    assert world.balances([a, b, c, d]) == [90, 10, 99, 1]
    retried = await world.send("x-2", c, d, 5)  # nothing was stored for its key
    assert retried.status == 201 and not retried.replayed


async def test_an_expired_hold_is_released_once_by_a_group_of_transfers_from_its_account() -> None:
    world = World(transactions=1)
    source, b, c, d = await world.accounts(1_000, 0, 100, 0)
    async with world.store() as uow:
        await create_hold(CreateHold(tenant_id=TENANT, source_account_id=source, destination_account_id=b,
                                     amount=Money(100, "USD"), expires_in=60), uow=uow, clock=world.clock)
    async with world.store() as uow:
        await create_hold(CreateHold(tenant_id=TENANT, source_account_id=source, destination_account_id=b,
                                     amount=Money(500, "USD"), expires_in=3_600), uow=uow, clock=world.clock)
    world.clock.advance(timedelta(seconds=61))  # the first is due, the second is not
    blocker, hold = await world.holding("blocker", c, d)
    sent = [world.send("t-1", source, b, 10), world.send("t-2", source, b, 20)]
    await asyncio.sleep(0)
    hold.set()
    await blocker
    assert [answer.status for answer in await asyncio.gather(*sent)] == [201, 201]
    assert world.sizes == [1, 2]
    assert world.store.accounts[source].held == 500 and world.balances([source]) == [970]
    assert [m.topic for m in world.store.outbox].count("hold.expired") == 1
    assert await InMemoryLedgerAudit(world.store).drift() == []


async def test_a_hot_accounts_requests_wait_in_memory_while_other_accounts_pass() -> None:
    world = World(transactions=2)
    hot, b, c, d, e = await world.accounts(100, 0, 0, 50, 0)
    first, hold = await world.holding("hot-1", hot, b)  # holds the hot account in a running transaction
    waiting = [world.send(f"hot-{n}", hot, c, 1) for n in range(2, 6)]
    await asyncio.sleep(0)
    cold = await asyncio.wait_for(world.send("cold", d, e, 5), timeout=5)  # the other transaction is free
    assert cold.status == 201
    assert not any(task.done() for task in waiting)  # queued behind the hot account, holding no transaction
    hold.set()
    assert [answer.status for answer in await asyncio.gather(first, *waiting)] == [201] * 5
    assert world.sizes == [1, 1, 4]  # hot-1, cold, then the four hot ones together
    assert world.balances([hot, b, c]) == [95, 1, 4]


async def test_a_further_transaction_starts_only_once_the_running_one_has_stalled() -> None:
    world = World(transactions=2, stall=0.3)
    a, b, c, d = await world.accounts(100, 0, 100, 0)
    stuck, hold = await world.holding("stuck", a, b)
    loop = asyncio.get_running_loop()
    began = loop.time()
    cold = world.send("cold", c, d, 1)
    await asyncio.sleep(0.1)
    assert not cold.done()  # a running group that has not stalled: the next requests wait to group
    assert (await asyncio.wait_for(cold, timeout=5)).status == 201  # it stalled: a second transaction took them
    assert loop.time() - began >= 0.25
    hold.set()
    assert (await stuck).status == 201 and world.sizes == [1, 1]


async def test_a_request_queued_longer_than_the_timeout_is_shed() -> None:
    world = World(transactions=1, queue_timeout=0.05)
    a, b, c, d = await world.accounts(100, 0, 100, 0)
    blocker, hold = await world.holding("blocker", a, b)
    with pytest.raises(Unavailable):
        await world.send("late", c, d, 1)
    hold.set()
    assert (await blocker).status == 201
    assert (await world.send("late", c, d, 1)).status == 201  # shed before it ran: its key is free


async def test_no_transactions_means_every_request_alone() -> None:
    world = World(transactions=0)
    a, b = await world.accounts(100, 0)
    answers = await asyncio.gather(*(world.send(f"k{n}", a, b, 10) for n in range(3)))
    assert [answer.status for answer in answers] == [201] * 3 and world.sizes == []
    assert world.balances([a, b]) == [70, 30]


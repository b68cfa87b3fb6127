"""The `Batches` port and the batch posting path, one suite over the in-memory store and PostgreSQL: a batch
stored as answered, batches that commit whole or not at all (a thousand transfers: several statements on
PostgreSQL), dry runs that write nothing, and batches racing single transfers without deadlock."""

from __future__ import annotations

import asyncio
import contextlib
import random
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest

from app.http.routes.batches import view
from core.batches import Batch, BatchStatus
from core.errors import BatchFailed, InsufficientFunds
from core.money import Money
from core.usecases.batches import BatchTransfer, PostBatch, dry_run_batch, post_batch
from core.usecases.transfers import MakeTransfer
from tests.contract.conftest import balance, open_account, transfer

pytestmark = pytest.mark.timeout(120)


def stored_batch(tenant_id: UUID) -> Batch:
    answer = {"id": None, "zeta": "first key", "alpha": ["é", {"b": 1, "a": None}], "atomic": True}
    return Batch(id=uuid4(), tenant_id=tenant_id, atomic=False, status=BatchStatus.PARTIALLY_COMPLETED,
                 transfers=2, view=answer, created_at=datetime.now(UTC))


def cmd(tenant_id: UUID, legs: list[tuple[UUID, UUID, int]], *, atomic: bool = True) -> PostBatch:
    return PostBatch(tenant_id=tenant_id, atomic=atomic, transfers=tuple(
        BatchTransfer(transfer=MakeTransfer(tenant_id=tenant_id, source_account_id=s, destination_account_id=d,
                                            amount=Money(amount, "USD")), reference=f"leg-{i}")
        for i, (s, d, amount) in enumerate(legs)))


async def run(uow_factory, clock, batch: PostBatch):
    async with uow_factory(lock_accounts=batch.locked_accounts) as uow:
        return await post_batch(batch, uow=uow, clock=clock, view=view)


async def test_a_batch_is_stored_as_answered_key_order_included_and_in_its_tenant_only(uow_factory, tenant) -> None:
    made = stored_batch(tenant.id)
    async with uow_factory() as uow:
        uow.batches.add(made)
    async with uow_factory(read_only=True) as uow:
        found = await uow.batches.get(tenant.id, made.id)
        assert await uow.batches.get(uuid4(), made.id) is None
        assert await uow.batches.get(tenant.id, uuid4()) is None
    assert found == made
    assert list(found.view) == ["id", "zeta", "alpha", "atomic"] and list(found.view["alpha"][1]) == ["b", "a"]


async def test_a_batch_added_in_a_unit_of_work_that_rolls_back_is_not_stored(uow_factory, tenant) -> None:
    made = stored_batch(tenant.id)
    with pytest.raises(RuntimeError):
        async with uow_factory() as uow:
            uow.batches.add(made)
            raise RuntimeError("roll back")
    async with uow_factory(read_only=True) as uow:
        assert await uow.batches.get(tenant.id, made.id) is None


async def test_a_thousand_transfer_batch_commits_whole(uow_factory, clock, audit, probe, tenant) -> None:
    # 12 accounts, updated with one array per column; 1,000 legs, their shared values folded (rows.folding)
    accounts = [(await open_account(uow_factory, clock, tenant.id, 100_000, user_id=f"u{i}")).id for i in range(12)]
    rng = random.Random(7)
    legs = [(s, d, rng.randint(1, 50)) for s, d in (rng.sample(accounts, 2) for _ in range(1_000))]

    result = await run(uow_factory, clock, cmd(tenant.id, legs))

    assert result.status == BatchStatus.COMPLETED and len(result.results) == 1_000
    expected = {a: 100_000 for a in accounts}
    for source, destination, amount in legs:
        expected[source] -= amount
        expected[destination] += amount
    assert {a: await balance(uow_factory, tenant.id, a) for a in accounts} == expected
    topics = [topic for topic, _ in await probe.outbox(tenant.id)]
    assert topics.count("transfer.completed") == 1_000
    async with uow_factory(read_only=True) as uow:
        assert (await uow.batches.get(tenant.id, result.id)).transfers == 1_000
    assert await audit.drift() == []


async def test_a_failing_atomic_batch_writes_nothing_and_a_dry_run_never_writes(
    uow_factory, clock, audit, probe, tenant
) -> None:
    a, b = [(await open_account(uow_factory, clock, tenant.id, 1_000, user_id=u)).id for u in ("a", "b")]
    outbox = await probe.outbox(tenant.id)
    with pytest.raises(BatchFailed) as failed:
        await run(uow_factory, clock, cmd(tenant.id, [(a, b, 600), (a, b, 600)]))
    assert [(f.index, type(f.error)) for f in failed.value.failures] == [(1, InsufficientFunds)]

    dry = await dry_run_batch(cmd(tenant.id, [(a, b, 600), (b, a, 100)]), uow_factory=uow_factory, clock=clock,
                              view=view)
    assert [(c.before, c.after) for c in dry.balances] == [(1_000, 500), (1_000, 1_500)]
    assert dry.id is None
    assert [await balance(uow_factory, tenant.id, x) for x in (a, b)] == [1_000, 1_000]
    assert await probe.outbox(tenant.id) == outbox
    assert await audit.drift() == []


async def test_batches_and_single_transfers_on_overlapping_accounts_neither_deadlock_nor_lose_money(
    uow_factory, clock, audit, tenant
) -> None:
    accounts = [(await open_account(uow_factory, clock, tenant.id, 10_000, user_id=f"u{i}")).id for i in range(5)]
    rng = random.Random(11)

    made: list[str] = []

    async def batch(atomic: bool) -> None:
        legs = [(s, d, rng.randint(1, 300)) for s, d in (rng.sample(accounts, 2) for _ in range(20))]
        with contextlib.suppress(BatchFailed):
            await run(uow_factory, clock, cmd(tenant.id, legs, atomic=atomic))
            made.append("batch")

    async def single() -> None:
        source, destination = rng.sample(accounts, 2)
        with contextlib.suppress(InsufficientFunds):
            await transfer(uow_factory, clock, tenant.id, source, destination, rng.randint(1, 300))
            made.append("transfer")

    work = [batch(i % 2 == 0) for i in range(12)] + [single() for _ in range(40)]
    rng.shuffle(work)
    await asyncio.wait_for(asyncio.gather(*work), timeout=60)
    assert made.count("batch") >= 6 and made.count("transfer") >= 20  # they did run, and mostly succeeded
    assert sum([await balance(uow_factory, tenant.id, a) or 0 for a in accounts]) == 50_000
    assert await audit.drift() == []

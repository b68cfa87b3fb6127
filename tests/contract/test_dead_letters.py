"""The `DeadLetters` port: one suite over the in-memory store and PostgreSQL.

The list is every tenant's (an operator's view), so letters here are dated in 2095, newer than any
other suite's, and deleted afterwards.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import attrs
import pytest

from core.work import PAYMENT, REFUND
from tests.contract.builders import add, letter
from tests.contract.conftest import new_tenant

pytestmark = pytest.mark.timeout(60)

T2 = datetime(2095, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


@pytest.fixture
async def tenants(uow_factory, clock, cleanup):
    made = [await new_tenant(uow_factory, clock) for _ in range(2)]
    cleanup.tenants.update(t.id for t in made)
    return made


async def test_add_then_get_round_trips_every_field(uow_factory, tenants) -> None:
    made = letter(tenants[0].id, REFUND, uuid4(), at=T2, correlation_id="req-d")
    await add(uow_factory, made)
    async with uow_factory() as uow:
        assert await uow.dead_letters.get(made.id) == made
        assert await uow.dead_letters.get(uuid4()) is None


async def test_list_is_newest_first_across_tenants_up_to_limit(uow_factory, tenants) -> None:
    made = [letter(tenants[n % 2].id, PAYMENT, uuid4(), at=T2 + timedelta(seconds=n % 3)) for n in range(6)]
    await add(uow_factory, *made[:3])
    await add(uow_factory, *made[3:])
    expected = sorted(made, key=lambda x: (x.created_at, x.id), reverse=True)
    async with uow_factory() as uow:
        assert await uow.dead_letters.list(limit=6) == expected
        assert await uow.dead_letters.list(limit=4) == expected[:4]
        assert await uow.dead_letters.list(limit=0) == []


async def test_mark_retried_records_the_redrive_of_that_letter_only(uow_factory, tenants) -> None:
    redriven = letter(tenants[0].id, PAYMENT, uuid4(), at=T2)
    waiting = letter(tenants[0].id, REFUND, uuid4(), at=T2 + timedelta(seconds=1))
    await add(uow_factory, redriven, waiting)
    async with uow_factory() as uow:
        found = await uow.dead_letters.get(redriven.id)
        uow.dead_letters.mark_retried(found)
        assert (await uow.dead_letters.get(redriven.id)).retried_at is None  # buffered until commit
    async with uow_factory() as uow:
        stored = await uow.dead_letters.get(redriven.id)
        listed = await uow.dead_letters.list(limit=2)
        assert await uow.dead_letters.get(waiting.id) == waiting
    assert stored.retried_at is not None and stored.retried_at.utcoffset() == timedelta(0)
    assert attrs.evolve(stored, retried_at=None) == redriven
    assert listed == [waiting, stored]


async def test_a_rolled_back_unit_of_work_writes_nothing(uow_factory, tenants) -> None:
    kept = letter(tenants[0].id, PAYMENT, uuid4(), at=T2)
    await add(uow_factory, kept)
    lost = letter(tenants[1].id, REFUND, uuid4(), at=T2)
    with pytest.raises(RuntimeError):
        async with uow_factory() as uow:
            uow.dead_letters.add(lost)
            uow.dead_letters.mark_retried(kept)
            raise RuntimeError("roll back")
    async with uow_factory() as uow:
        assert await uow.dead_letters.get(lost.id) is None
        assert await uow.dead_letters.get(kept.id) == kept

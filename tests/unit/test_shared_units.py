"""`SharedUnits`, the engine that lets a worker's concurrent attempts share units of work: who waits together, what
each group is given to prepare, and that a group is one tenant's (the behaviour with real payments, on both backends,
is in tests/contract/test_shared_units.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from uuid import UUID

from adapters.memory import InMemoryStore
from core.ports import UnitOfWork
from core.usecases.shared_units import SharedUnits

A = UUID("0191e5a0-0000-7000-8000-00000000000a")
B = UUID("0191e5a0-0000-7000-8000-00000000000b")


class Recorder:
    def __init__(self) -> None:
        self.prepared: list[tuple[UUID, list[str]]] = []
        self.units: list[UnitOfWork] = []  # the unit of work each work ran in (kept: ids of freed ones recur)
        self.sizes: list[int] = []

    async def prepare(self, uow: UnitOfWork, tenant_id: UUID, claims: Sequence[str]) -> None:
        self.prepared.append((tenant_id, list(claims)))


async def test_a_unit_of_work_alone_runs_at_once_and_those_waiting_meanwhile_share_the_next() -> None:
    seen = Recorder()
    units = SharedUnits[str](uow_factory=InMemoryStore(), optimistic=False, prepare=seen.prepare,
                             observe=seen.sizes.append)

    async def work(uow: UnitOfWork, name: str) -> str:
        seen.units.append(uow)
        await asyncio.sleep(0)
        return name.upper()

    def run(name: str, tenant: UUID = A) -> asyncio.Future[str]:
        return asyncio.ensure_future(units.run(lambda uow: work(uow, name), tenant_id=tenant, claim=name))

    first = run("a1")
    await asyncio.sleep(0)
    rest = [run("a2"), run("b1", B), run("a3"), run("a4")]
    assert await asyncio.gather(first, *rest) == ["A1", "A2", "B1", "A3", "A4"]
    assert seen.sizes == [1, 3, 1]  # alone; then the queued ones of the first one's tenant; then the other tenant's
    assert seen.prepared == [(A, ["a2", "a3", "a4"])]  # a group prepares; a lone unit of work needs nothing read ahead
    assert len({id(uow) for uow in seen.units}) == 3 and seen.units[1] is seen.units[2] is seen.units[3]


async def test_groups_are_at_most_group_size() -> None:
    seen = Recorder()
    units = SharedUnits[str](uow_factory=InMemoryStore(), optimistic=True, prepare=seen.prepare, group_size=2,
                             observe=seen.sizes.append)

    async def work(uow: UnitOfWork) -> None:
        await asyncio.sleep(0)

    await asyncio.gather(*(units.run(work, tenant_id=A, claim=str(n)) for n in range(6)))
    assert seen.sizes == [1, 2, 2, 1]

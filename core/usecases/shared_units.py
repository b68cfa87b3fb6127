"""Units of work that a worker's concurrent tasks share: the transactions that wait together become one, each task
keeping its own result (the group commit of `group_commit.PostingEngine`, for a worker's payment attempts)."""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar
from uuid import UUID

import attrs

from core.ports import UnitOfWork, UnitOfWorkFactory
from core.usecases.group_commit import awaited, settle

T = TypeVar("T")
C = TypeVar("C")
Work = Callable[[UnitOfWork], Awaitable[Any]]


@attrs.define(eq=False)
class _Job(Generic[C]):
    """One task's unit of work waiting for its group: what it needs the group to lock or read first (`claim`), its
    work, the context it was asked in, and how to answer it."""

    tenant_id: UUID
    claim: C
    work: Work
    context: contextvars.Context
    done: asyncio.Future[Any]


class SharedUnits(Generic[C]):
    """Runs units of work, one for all those that wait together.

    With none running, a unit of work starts at once, alone (as `async with uow_factory() as uow: work(uow)`).
    While one runs, others queue, and the one that ends starts the next with up to `group_size` of the queued ones of
    the first one's tenant: the busier the process, the larger its groups. A group's unit of work first runs
    `prepare` with every member's claim (one statement locks or reads all their rows, in the order every group
    takes them), then each member's work in turn, each in its own context (its logs, its trace), then commits once.

    Each member keeps its own result. Should the group's unit of work fail as a whole (a work raising, a conflict at
    commit, the database), nothing of it is kept and each member runs again alone, its own error its own. So a
    member's work must be safe to run twice and change nothing outside the unit of work (as any unit of work that
    may be retried). A task that stops waiting (cancelled) does not stop its group; its result is dropped. A work
    that cancels itself fails its group like an error, and alone its member is answered cancelled, no other.
    `observe`, when set, is told each group's size.
    """

    def __init__(self, *, uow_factory: UnitOfWorkFactory, optimistic: bool,
                 prepare: Callable[[UnitOfWork, UUID, Sequence[C]], Awaitable[None]], group_size: int = 32,
                 observe: Callable[[int], None] | None = None) -> None:
        self._uow_factory, self._optimistic, self._prepare = uow_factory, optimistic, prepare
        self._group_size, self.observe = group_size, observe
        self._queue: deque[_Job[C]] = deque()
        self._running = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, work: Callable[[UnitOfWork], Awaitable[T]], *, tenant_id: UUID, claim: C) -> T:
        """`work`'s result in a unit of work shared with the others waiting now, or in one of its own."""
        job = _Job(tenant_id=tenant_id, claim=claim, work=work, context=contextvars.copy_context(),
                   done=asyncio.get_running_loop().create_future())
        self._queue.append(job)
        self._start()
        result: T = await job.done
        return result

    def _start(self) -> None:
        if self._running or not self._queue:
            return
        tenant = self._queue[0].tenant_id
        group = [job for job in self._queue if job.tenant_id == tenant][:self._group_size]
        taken = set(map(id, group))
        self._queue = deque(job for job in self._queue if id(job) not in taken)
        self._running = True
        # An empty context: the group belongs to no one task (each job's work runs in its own).
        task = asyncio.get_running_loop().create_task(self._run(group), context=contextvars.Context())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, group: list[_Job[C]]) -> None:
        try:
            if self.observe is not None:
                self.observe(len(group))
            if len(group) == 1:
                await self._alone(group[0])
                return
            try:
                results = await self._together(group)
            except Exception:  # the shared unit of work failed as a whole: each again alone, each its own error
                await asyncio.gather(*(self._alone(job) for job in group))
                return
            for job, result in zip(group, results, strict=True):
                settle(job.done, result)
        except BaseException:  # cancelled (the process stopping): nobody waits for ever
            for job in group:
                job.done.cancel()
            raise
        finally:
            self._running = False
            self._start()

    async def _alone(self, job: _Job[C]) -> None:
        async def alone() -> Any:
            async with self._uow_factory(optimistic=self._optimistic) as uow:
                return await job.work(uow)
        try:
            result = await asyncio.get_running_loop().create_task(alone(), context=job.context)
        except asyncio.CancelledError:
            if _stopping():
                raise
            job.done.cancel()  # the member's own work was cancelled (from within): its outcome alone
        except Exception as error:
            settle(job.done, error)
        else:
            settle(job.done, result)

    async def _together(self, group: list[_Job[C]]) -> list[Any]:
        loop = asyncio.get_running_loop()
        async with self._uow_factory(optimistic=self._optimistic) as uow:
            await self._prepare(uow, group[0].tenant_id, [job.claim for job in group])
            results = []
            for job in group:
                try:
                    results.append(await loop.create_task(awaited(job.work(uow)), context=job.context))
                except asyncio.CancelledError:
                    if _stopping():
                        raise
                    raise MemberCancelled from None  # one member's: the group fails, each runs again alone
            return results


class MemberCancelled(Exception):
    """A member's work was cancelled from within (not its group): the group fails as on any member's error."""


def _stopping() -> bool:
    """Whether the running task itself is being cancelled (the group, or a lone job's runner: the process stopping),
    rather than a member's work that raised `CancelledError` on its own."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


"""Group commit: the idempotent writes that arrive together in one process share one transaction, each keeping
its own outcome (ARCHITECTURE.md rule 8's posting engine; TigerBeetle's batching, on PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Awaitable, Callable, Collection
from datetime import timedelta
from typing import Any, TypeVar
from uuid import UUID

import attrs

from core.errors import CoreError, IdempotencyRequestInProgress, Unavailable
from core.idempotency import IdempotencyRecord, IdempotentRequest, StoredResponse
from core.ports import Clock, UnitOfWork, UnitOfWorkFactory
from core.usecases.idempotency import record_of, replay, run_idempotent

T = TypeVar("T")
Work = Callable[[UnitOfWork], Awaitable[Any]]
Outcome = StoredResponse | BaseException


@attrs.define(eq=False)
class _Job:
    """One request waiting for its group: its work, how to answer it, and the context it was asked in."""

    work: Work
    request: IdempotentRequest
    render: Callable[[Any], StoredResponse]
    render_error: Callable[[CoreError], StoredResponse]
    lock_accounts: Collection[UUID]
    context: contextvars.Context
    done: asyncio.Future[StoredResponse]
    timer: asyncio.TimerHandle | None = None  # sheds it if it is still queued then


class PostingEngine:
    """Runs idempotent units of work, one transaction for all those that wait together.

    With no group running, a request starts one at once, alone (exactly as `run_idempotent` runs it). While
    one runs, requests queue, and the group that ends starts the next with up to `group_size` of the queued
    requests of one tenant: the busier the process, the larger its groups, and a group makes one BEGIN, one
    claim of all its keys, one lock of all its accounts (ascending, as every lock), one write and one COMMIT
    for all its requests. Requests on one hot account book in turn in memory inside a group instead of
    queueing on its row lock. A further group starts beside the running ones (up to `transactions` in all)
    only once each of them has run `stall` seconds: one transaction at a time makes the largest groups (the
    least work per request), and a group stalled on a row lock held elsewhere does not hold up the others.

    Each request keeps its own outcome: a replay or a key in flight answers as alone; a business error is
    rendered and stored for its key in the group's transaction, the others unaffected. So a grouped `work`
    must change nothing in the unit of work when it raises a business error (a transfer checks everything
    before it changes anything). When the group's transaction fails as a whole (a conflict, a key stored
    meanwhile, an unexpected error), each of its requests runs again alone, so one request's failure is only
    its own; so does `Unavailable` (a bounded wait ran out), each request alone at once with its own wait. A request
    that waited in the queue longer than `queue_timeout` is shed with `Unavailable` (503), as a unit of work
    that waits too long for its connection is. `observe`, when set, is told each group's size.
    """

    def __init__(self, *, uow_factory: UnitOfWorkFactory, clock: Clock, ttl: timedelta, transactions: int,
                 group_size: int, queue_timeout: float, stall: float = 0.05,
                 observe: Callable[[int], None] | None = None) -> None:
        self._uow_factory, self._clock, self._ttl = uow_factory, clock, ttl
        self._transactions, self._group_size, self._queue_timeout = transactions, group_size, queue_timeout
        self._stall = stall
        self._queue: deque[_Job] = deque()
        self._running = 0
        self._since: list[float] = []  # when each running group started (the loop's time)
        self._recheck: asyncio.TimerHandle | None = None
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._busy: dict[UUID, int] = {}  # accounts the running groups hold: how many of them
        self._keys: set[tuple[UUID, str]] = set()  # the keys of the requests queued or running
        self.observe = observe  # the HTTP driver sets its metric here

    async def run(self, work: Work, *, request: IdempotentRequest,
                  render: Callable[[Any], StoredResponse], render_error: Callable[[CoreError], StoredResponse],
                  lock_accounts: Collection[UUID] = ()) -> StoredResponse:
        """Run `work` under `request`'s key, grouped with others when they wait together; answer as
        `run_idempotent` answers (its response, a replay, or its errors raised)."""
        if not self._transactions:  # grouping off: every request alone, as `run_idempotent` runs it
            return await run_idempotent(work, request=request, render=render, render_error=render_error,
                                        uow_factory=self._uow_factory, clock=self._clock, ttl=self._ttl,
                                        lock_accounts=lock_accounts)
        slot = (request.tenant_id, request.key)
        if slot in self._keys:  # as the key's advisory lock would answer, without waiting for a turn to ask it
            raise IdempotencyRequestInProgress("a request with this Idempotency-Key is still in progress")
        loop = asyncio.get_running_loop()
        job = _Job(work=work, request=request, render=render, render_error=render_error,
                   lock_accounts=tuple(lock_accounts), context=contextvars.copy_context(),
                   done=loop.create_future())
        job.timer = loop.call_later(self._queue_timeout, self._shed, job)
        self._keys.add(slot)
        try:
            self._queue.append(job)
            self._start()
            return await job.done
        finally:
            self._keys.discard(slot)

    def _start(self) -> None:
        """Start groups from the queue while fewer than `transactions` run, the running ones have all stalled,
        and a queued request is free to start."""
        loop = asyncio.get_running_loop()
        while self._queue and self._running < self._transactions and not self._stopping:
            if self._since and (youngest := max(self._since)) + self._stall > loop.time():
                if self._recheck is None:  # look again when the youngest running group will have stalled
                    self._recheck = loop.call_at(youngest + self._stall, self._look_again)
                return
            group = self._take()
            if not group:
                return
            self._running += 1
            self._hold(group, 1)
            # An empty context: the group belongs to no one request (each job's work runs in its own).
            task = loop.create_task(self._run(group, started := loop.time()), context=contextvars.Context())
            self._since.append(started)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _look_again(self) -> None:
        self._recheck = None
        self._start()

    def _hold(self, group: list[_Job], step: int) -> None:
        for account in {account for job in group for account in job.lock_accounts}:
            if (count := self._busy.get(account, 0) + step) > 0:
                self._busy[account] = count
            else:
                del self._busy[account]

    def _take(self) -> list[_Job]:
        """The next group: queued requests of the first free request's tenant, in their order, up to `group_size`.

        A request naming an account that a running group holds waits for the next group, and so does every
        request queued after it on one of its accounts (per account, requests start in the order they came): a
        hot account's requests wait in memory, then book together, and never hold the transactions that the
        other accounts' requests need."""
        group: list[_Job] = []
        tenant: UUID | None = None
        blocked = set(self._busy)
        left: deque[_Job] = deque()
        for job in self._queue:
            if (len(group) == self._group_size or tenant not in (None, job.request.tenant_id)
                  or not blocked.isdisjoint(job.lock_accounts)):
                blocked.update(job.lock_accounts)
                left.append(job)
            else:
                tenant = job.request.tenant_id
                group.append(job)
        self._queue = left
        for job in group:
            if job.timer is not None:
                job.timer.cancel()
        return group

    def _shed(self, job: _Job) -> None:
        """A request still queued after `queue_timeout` is answered 503 (load is shed, not queued without end)."""
        if job in self._queue:
            self._queue.remove(job)
            _settle(job, Unavailable("too many requests are waiting for the database; retry later"))
            self._start()  # the requests queued behind it on its accounts may start now

    async def _run(self, group: list[_Job], started: float) -> None:
        try:
            if self.observe is not None:
                self.observe(len(group))
            if len(group) == 1:
                await self._alone(group[0])
                return
            try:
                outcomes = await self._together(group)
            except Unavailable:  # a wait ran out (one account's row held elsewhere, the database down): each
                # request again alone, at once, each with its own bounded wait; only those it concerns fail
                await asyncio.gather(*(self._alone(job) for job in group))
                return
            except Exception:  # the transaction as a whole failed: each request again, alone, in their order
                for job in group:
                    await self._alone(job)
                return
            for job, outcome in zip(group, outcomes, strict=True):
                _settle(job, outcome)
        except BaseException:  # cancelled (the process stopping): no request waits for ever; a retry replays
            self._stopping = True  # what committed, or runs what did not
            for job in [*group, *self._queue]:
                _settle(job, Unavailable("the server is stopping; retry"))
            self._queue.clear()
            raise
        finally:
            self._running -= 1
            self._since.remove(started)
            self._hold(group, -1)
            self._start()

    async def _alone(self, job: _Job) -> None:
        """`run_idempotent` for one request, in its own context; its answer or error settles the request."""
        try:
            response = await asyncio.get_running_loop().create_task(run_idempotent(
                job.work, request=job.request, render=job.render, render_error=job.render_error,
                uow_factory=self._uow_factory, clock=self._clock, ttl=self._ttl, lock_accounts=job.lock_accounts,
            ), context=job.context)
        except Exception as error:
            _settle(job, error)
        else:
            _settle(job, response)

    async def _together(self, group: list[_Job]) -> list[Outcome]:
        """One transaction for the group: claim every key, lock every account of the requests that are to run,
        run each in its turn, store each response with its key; commit."""
        tenant = group[0].request.tenant_id
        accounts = sorted({account for job in group for account in job.lock_accounts})
        outcomes: list[Outcome] = []
        async with self._uow_factory(lock_accounts=accounts) as uow:
            claims = await uow.idempotency.claim_all([job.request for job in group], self._clock.now())
            to_run = {account for job, claim in zip(group, claims, strict=True) if claim is None
                      for account in job.lock_accounts}
            if to_run:
                await uow.accounts.lock(tenant, sorted(to_run))
            for job, claim in zip(group, claims, strict=True):
                outcomes.append(_replayed(claim, job.request) if claim is not None else await self._book(job, uow))
        return outcomes

    async def _book(self, job: _Job, uow: UnitOfWork) -> StoredResponse:
        """Run one request's work in the group's unit of work (in the request's own context: its logs, its trace
        on the events it writes); its response, or its business error's, is stored for its key."""
        try:
            result: Any = await asyncio.get_running_loop().create_task(awaited(job.work(uow)), context=job.context)
        except CoreError as error:
            if error.transient:
                raise  # the group's transaction cannot go on: each request runs again alone
            response = job.render_error(error)
        else:
            response = job.render(result)
        uow.idempotency.add(record_of(job.request, response, self._clock, self._ttl))
        return response


def _replayed(claim: IdempotencyRecord | IdempotencyRequestInProgress, request: IdempotentRequest) -> Outcome:
    if isinstance(claim, BaseException):
        return claim
    try:
        return replay(claim, request)
    except CoreError as error:
        return error


async def awaited(work: Awaitable[T]) -> T:
    """`work` as a coroutine (what `create_task` takes), to run a job's work in the job's own context."""
    return await work


def settle(done: asyncio.Future[Any], outcome: Any) -> None:
    """Answer a waiting job with its result, or its error raised. A future already done is left alone: here it
    cannot be (a job is settled once; kept so a bug answers one request, not all); for a worker's shared unit of
    work it is a waiter that stopped waiting (cancelled), whose result is dropped."""
    if done.done():
        return
    if isinstance(outcome, BaseException):
        done.set_exception(outcome)
    else:
        done.set_result(outcome)


def _settle(job: _Job, outcome: Outcome) -> None:
    settle(job.done, outcome)

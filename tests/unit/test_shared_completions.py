"""What a shared group that fails makes of its members when each runs again alone: a COMMIT whose outcome is unknown
(the members' work may have committed), and one member's own cancellation (found by a review of `SharedUnits`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any
from uuid import UUID

from adapters.memory import InMemoryStore
from adapters.memory.locks import InMemoryLocks
from core.clock import SystemClock
from core.errors import Unavailable
from core.ids import new_id
from core.money import Money
from core.payments import FailureCode, Payment, PaymentStatus
from core.ports import UnitOfWork
from core.providers import PaymentProvider
from core.usecases.external_payments import CreateExternalPayment, create_external_payment
from core.usecases.late_charges import LATE_DETECTED
from core.usecases.payment_outcome import record_charge_outcome
from core.usecases.shared_attempts import PaymentClaim, shared_attempts
from core.usecases.shared_units import SharedUnits
from core.usecases.worker_deps import Deps, WorkResult
from core.work import RetryPolicy
from tests.contract.conftest import new_tenant, open_account


class LoseNthCommit:
    """A unit-of-work factory whose `nth` read-write unit of work commits, then raises `Unavailable`: the connection
    lost at COMMIT, the outcome unknown to the caller."""

    def __init__(self, store: InMemoryStore, nth: int) -> None:
        self.store, self.nth, self.count = store, nth, 0

    def __call__(self, **kwargs: Any) -> Any:
        inner = self.store(**kwargs)
        if kwargs.get("read_only"):
            return inner
        self.count += 1
        lose = self.count == self.nth

        class Lost:
            async def __aenter__(self) -> UnitOfWork:
                return await inner.__aenter__()

            async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                                trace: TracebackType | None) -> None:
                await inner.__aexit__(kind, error, trace)
                if lose and kind is None:
                    raise Unavailable("the connection was lost at COMMIT")

        return Lost()


async def held(units: SharedUnits[Any], tenant: UUID, claim: Any) -> tuple[asyncio.Future[Any], asyncio.Event]:
    """A unit of work that runs alone until released, so that the next ones wait and then run as one group."""
    release = asyncio.Event()

    async def wait(uow: UnitOfWork) -> None:
        await release.wait()

    head = asyncio.ensure_future(units.run(wait, tenant_id=tenant, claim=claim))
    await asyncio.sleep(0)
    return head, release


def no_provider(name: str) -> PaymentProvider:
    raise AssertionError("recording an outcome calls no provider")


async def test_a_late_charge_is_noted_once_when_its_groups_commit_outcome_was_unknown() -> None:
    store, clock = InMemoryStore(), SystemClock()
    tenant = await new_tenant(store, clock)
    source = await open_account(store, clock, tenant.id, 10_000)
    begun: list[Payment] = []
    for failed in (False, True):  # one processing; one failed, whose charge then arrives late
        async with store() as uow:
            created = await create_external_payment(CreateExternalPayment(
                tenant_id=tenant.id, source_account_id=source.id, amount=Money(1_000, "USD"), provider="stripe"),
                uow=uow, clock=clock)
        async with store() as uow:
            payment = await uow.payments.lock(tenant.id, created.id)
            assert payment is not None
            payment.transition(PaymentStatus.PROCESSING, clock.now())
            if failed:
                payment.fail(FailureCode.RETRIES_EXHAUSTED, "gave up", clock.now())
            uow.payments.save(payment)
        begun.append(payment)
    factory = LoseNthCommit(store, nth=2)  # 1: the head, alone; 2: the group of both completions, which commits
    shared = shared_attempts(factory)
    deps = Deps(uow_factory=factory, providers=no_provider, locks=InMemoryLocks(), clock=clock, policy=RetryPolicy(),
                shared=shared)
    head, release = await held(shared.completions, tenant.id, PaymentClaim(new_id(), "USD", "stripe"))
    calls = [asyncio.ensure_future(record_charge_outcome(p, f"ch_{p.id}", None, deps)) for p in begun]
    await asyncio.sleep(0)
    release.set()
    outcomes = (await asyncio.gather(head, *calls))[1:]
    assert factory.count == 4  # the group ran, then each member again alone
    assert outcomes[1].result == WorkResult.LATE  # the reversal is asked for again (it is idempotent)
    async with store(read_only=True) as uow:
        events = [e.type for e in await uow.payments.events(tenant.id, begun[1].id)]
    assert events.count(LATE_DETECTED) == 1, events


def member(name: str, runs: list[str], committed: list[str]) -> Callable[[UnitOfWork], Awaitable[str]]:
    async def run(uow: UnitOfWork) -> str:
        runs.append(name)
        if name == "bad":  # in the group: an error (so each runs again alone); alone: cancelled from within
            raise ValueError("bad") if runs.count(name) == 1 else asyncio.CancelledError()
        await asyncio.sleep(0.01)
        committed.append(name)
        return name

    return run


async def test_one_members_cancellation_is_its_own_not_its_neighbours() -> None:
    async def nothing(uow: UnitOfWork, tenant_id: UUID, claims: Any) -> None:
        return None

    units = SharedUnits[str](uow_factory=InMemoryStore(), optimistic=False, prepare=nothing)
    tenant, runs, committed = new_id(), [], []
    head, release = await held(units, tenant, "head")
    members = [asyncio.ensure_future(units.run(member(name, runs, committed), tenant_id=tenant, claim=name))
               for name in ("a", "bad", "c")]
    await asyncio.sleep(0)
    release.set()
    await head
    results = await asyncio.gather(*members, return_exceptions=True)
    assert committed == ["a", "a", "c"]  # a in the group (rolled back), then a and c alone, committed
    assert results[0] == "a" and results[2] == "c", results
    assert isinstance(results[1], asyncio.CancelledError)
    assert not any(m.cancelled() for m in (members[0], members[2]))

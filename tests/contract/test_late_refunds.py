"""Late refunds on both backends: a refund the provider confirms after it failed is posted once, through the
real repositories and ledger (PostgreSQL: the composed write, the balance trigger, the audit), or held.

Rows are written with the builders, dated in 2090, so no relay of another suite sharing the database starts
work for them; the provider is the in-memory one (its answers are what is under test here, not its wire)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from adapters.memory.locks import InMemoryLocks
from adapters.memory.providers import InMemoryProvider
from app.bootstrap import Services
from core.payments import Payment, PaymentStatus
from core.ports import LedgerAudit, UnitOfWorkFactory
from core.providers import ChargeRequest, RefundRequest
from core.refunds import Refund, RefundStatus
from core.tenants import Tenant
from core.usecases.refund_attempt import process_refund
from core.usecases.refund_outcome import record_refund_outcome
from core.usecases.worker_deps import Deps, WorkResult
from core.work import REFUND, RetryPolicy, WorkItem
from tests.contract.builders import add, payment, refund
from tests.contract.conftest import balance, open_account

pytestmark = pytest.mark.timeout(60)

T1 = datetime(2090, 5, 6, 7, 8, 9, tzinfo=UTC)


@pytest.fixture(autouse=True)
async def forget_letters(backend: str, services: Services, tenant: Tenant) -> AsyncIterator[None]:
    """Afterwards, delete the tenant's dead letters (the dead-letter suite lists every tenant's). The rest stays:
    ledger entries are append-only, and nothing here is left in flight."""
    yield
    if backend == "postgres":
        await services.pool.execute("DELETE FROM dead_letters WHERE tenant_id = $1", tenant.id)


async def paid_and_failed(uow_factory: UnitOfWorkFactory, clock: Any, tenant: Tenant,
                          amount: int) -> tuple[Deps, InMemoryProvider, Payment, Refund]:
    """A payment of 100.00 charged at the provider, and a refund of `amount` of it that failed (the provider
    down for its only attempt)."""
    account = await open_account(uow_factory, clock, tenant.id)
    provider = InMemoryProvider("stripe")
    made = payment(tenant.id, account.id, at=T1, status=PaymentStatus.COMPLETED, amount=10_000)
    made.provider_reference = (await provider.charge(ChargeRequest(
        payment_id=made.id, amount=10_000, currency="USD", metadata={}, description=None))).reference
    pending = refund(made, at=T1, amount=amount)
    await add(uow_factory, made, pending)
    deps = Deps(uow_factory=uow_factory, providers=lambda _: provider, locks=InMemoryLocks(), clock=clock,
                policy=RetryPolicy(max_attempts=1))
    provider.available = False
    assert (await process_refund(WorkItem(kind=REFUND, tenant_id=tenant.id, target_id=pending.id),
                                 deps=deps)).status == RefundStatus.FAILED
    provider.available = True
    async with uow_factory() as uow:
        failed = await uow.refunds.lock(tenant.id, pending.id)
    assert failed is not None
    return deps, provider, made, failed


async def letters_of(uow_factory: UnitOfWorkFactory, target_id: UUID) -> list[str]:
    async with uow_factory() as uow:
        return [x.error for x in await uow.dead_letters.list(limit=1000) if x.target_id == target_id]


async def test_a_refund_found_after_it_failed_is_posted_once(
    uow_factory: UnitOfWorkFactory, clock: Any, tenant: Tenant, audit: LedgerAudit
) -> None:
    deps, provider, made, failed = await paid_and_failed(uow_factory, clock, tenant, 4_000)
    done = await provider.refund(RefundRequest(refund_id=failed.id, payment_id=made.id, amount=4_000,
                                               currency="USD", charge_reference=made.provider_reference or "",
                                               reason=None, metadata={}))
    work = WorkItem(kind=REFUND, tenant_id=tenant.id, target_id=failed.id)

    found = await process_refund(work, deps=deps)  # delivered again: the provider is asked, and says it refunded

    assert (found.result, found.status) == (WorkResult.DONE, RefundStatus.SUCCEEDED)
    assert (await process_refund(work, deps=deps)).result == WorkResult.SKIPPED
    assert (await record_refund_outcome(tenant.id, made.id, failed, (done.reference, None), deps)).result == (
        WorkResult.SKIPPED)  # the same answer arriving late as well changes nothing
    async with uow_factory() as uow:
        posted = await uow.refunds.lock(tenant.id, failed.id)
        stored = await uow.payments.get(tenant.id, made.id)
        types = [e.type for e in await uow.payments.events(tenant.id, made.id)]
    assert posted is not None and (posted.status, posted.provider_reference) == (RefundStatus.SUCCEEDED,
                                                                                 done.reference)
    assert stored is not None and (stored.status, stored.refunded_amount) == (PaymentStatus.PARTIALLY_REFUNDED,
                                                                             4_000)
    assert types[-3:] == ["refund.failed", "refund.late_success_detected", "payment.partially_refunded"]
    assert await balance(uow_factory, tenant.id, made.source_account_id) == 4_000  # moved once
    assert len(await letters_of(uow_factory, failed.id)) == 1  # the failure's only
    assert await audit.drift() == []


async def test_a_late_refund_that_no_longer_fits_is_held_once(
    uow_factory: UnitOfWorkFactory, clock: Any, tenant: Tenant, audit: LedgerAudit
) -> None:
    deps, _, made, failed = await paid_and_failed(uow_factory, clock, tenant, 6_000)
    await add(uow_factory, refund(made, at=T1, amount=10_000, status=RefundStatus.SUCCEEDED))  # took its place

    for _ in range(2):
        held = await record_refund_outcome(tenant.id, made.id, failed, ("re_late", None), deps)
        assert (held.result, held.status) == (WorkResult.DONE, RefundStatus.FAILED)

    async with uow_factory() as uow:
        still = await uow.refunds.lock(tenant.id, failed.id)
        types = [e.type for e in await uow.payments.events(tenant.id, made.id)]
    assert still is not None and still.status == RefundStatus.FAILED
    assert types.count("refund.late_success_held") == 1
    errors = await letters_of(uow_factory, failed.id)
    assert len(errors) == 2 and sum("re_late" in error for error in errors) == 1
    assert await balance(uow_factory, tenant.id, made.source_account_id) == 0  # nothing moved
    assert await audit.drift() == []

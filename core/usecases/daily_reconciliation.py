"""The daily reconciliation: yesterday's (UTC) settlement reports reconciled once per provider and tenant, by one
worker at a time, under the housekeeping lease."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import attrs

from core.payments import PROVIDERS
from core.ports import Clock, Lease, UnitOfWorkFactory
from core.providers import PaymentProvider
from core.reconciliation import Reconciliation, day_bounds
from core.usecases.outbox import HOUSEKEEPING
from core.usecases.reconciliation import Reconcile, fetch_reports, run_reconciliation


@attrs.frozen(kw_only=True)
class DailyReconciliation:
    """When and how the daily run reconciles (`PAYMENTS_RECONCILE_*`).

    `run_after`: how far into a UTC day yesterday's run may start (late settlement entries of yesterday, up to
    `grace` after midnight, must have landed); `retry_after`: how long after a failed run (the report did not
    come) it is tried again.
    """

    enabled: bool = True
    run_after: timedelta = timedelta(hours=2)
    grace: timedelta = timedelta(hours=1)
    retry_after: timedelta = timedelta(hours=1)


async def reconcile_yesterday(
    *, lease: Lease, owner: str, ttl_seconds: float, uow_factory: UnitOfWorkFactory,
    providers: Callable[[str], PaymentProvider], clock: Clock, policy: DailyReconciliation, name: str = HOUSEKEEPING,
) -> list[Reconciliation] | None:
    """Under the lease: reconcile yesterday for every provider and every tenant settling through it that has
    no completed reconciliation of that day yet (nor a failed one more recent than `retry_after`); the
    reconciliations made (each provider's reports are fetched once for all its tenants). None when another
    process holds the lease; nothing when disabled or too early in the day."""
    now = clock.now()
    if not policy.enabled or now - day_bounds(now.date())[0] < policy.run_after:
        return []
    if await lease.acquire(name, owner, ttl_seconds) is None:
        return None
    day, made = now.date() - timedelta(days=1), []
    for provider in PROVIDERS:
        async with uow_factory(read_only=True) as uow:
            tenants = await uow.reconciliations.due(provider, day, failed_before=now - policy.retry_after)
        if not tenants:
            continue
        reports = await fetch_reports(providers(provider), day, today=now.date())
        for tenant in tenants:
            cmd = Reconcile(tenant_id=tenant, provider=provider, day=day, correlation_id=f"reconcile-{day}")
            made.append(await run_reconciliation(cmd, reports, uow_factory=uow_factory, clock=clock,
                                                 grace=policy.grace))
    return made

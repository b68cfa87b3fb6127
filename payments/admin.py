"""The operators' commands: `ledger check`, `dlq list|retry` and `reconcile`."""

from __future__ import annotations

import argparse
import asyncio
import sys

from app.bootstrap import Endpoints, bootstrap
from app.settings import Settings


def cmd_ledger_check(settings: Settings, endpoints: Endpoints) -> int:
    async def run() -> list[str]:
        services = await bootstrap(settings, endpoints.database_url, endpoints.redis_url)
        try:
            return await services.audit.drift()
        finally:
            await services.aclose()

    problems = asyncio.run(run())
    for line in problems:
        print(f"DRIFT {line}")
    print("ledger ok: every balance equals its entries, balance_after and every hash chain hold, every tenant's "
          "currencies sum to 0" if not problems else f"ledger drift: {len(problems)} problem(s)")
    return 1 if problems else 0


def cmd_dlq(settings: Settings, endpoints: Endpoints, args: argparse.Namespace) -> int:
    """`dlq list`: one line per dead letter; `dlq retry ID`: re-drive it to the workers."""
    from uuid import UUID

    from core.errors import CoreError
    from core.usecases.dlq import list_dead_letters, retry_dead_letter

    async def run() -> int:
        services = await bootstrap(settings, endpoints.database_url, endpoints.redis_url)
        try:
            if args.dlq_command == "list":
                async with services.uow_factory(read_only=True) as uow:
                    letters = await list_dead_letters(uow=uow, limit=args.limit)
                print(f"{'ID':36}  {'KIND':7}  {'PAYMENT/REFUND ID':36}  {'ATTEMPTS':>8}  {'FAILED AT':25}  "
                      f"{'RETRIED':7}  ERROR")
                for x in letters:
                    print(f"{x.id}  {x.kind:7}  {x.target_id}  {x.attempts:>8}  {x.created_at.isoformat():25}  "
                          f"{'yes' if x.retried_at else 'no':7}  {x.error}")
                print(f"{len(letters)} dead letter(s)", file=sys.stderr)
                return 0
            print(await retry_dead_letter(UUID(args.id), uow_factory=services.uow_factory, queue=services.queue,
                                          clock=services.clock))
            return 0
        except CoreError as error:
            print(f"payments dlq {args.dlq_command}: {error.detail}", file=sys.stderr)
            return 1
        finally:
            await services.aclose()

    if args.dlq_command == "retry":
        try:
            UUID(args.id)
        except ValueError:
            print(f"payments dlq retry: {args.id!r} is not a dead letter id (a UUID)", file=sys.stderr)
            return 2
    return asyncio.run(run())


def cmd_reconcile(settings: Settings, endpoints: Endpoints, args: argparse.Namespace) -> int:
    """`reconcile [--provider P] [--date D] [--tenant NAME]`: reconcile and print each run; 1 on any mismatch
    (or a run that failed), 2 for bad arguments."""
    from datetime import UTC, date, datetime, timedelta
    from uuid import uuid4

    from core.errors import CoreError
    from core.payments import PROVIDERS
    from core.reconciliation import MatchResult
    from core.usecases.reconciliation import Reconcile, check_reconcile, fetch_reports, run_reconciliation
    from core.views import reconciliation_item_view

    today = datetime.now(UTC).date()
    try:
        day = date.fromisoformat(args.date) if args.date else today - timedelta(days=1)
    except ValueError:
        print(f"payments reconcile: --date {args.date!r} is not a day (YYYY-MM-DD)", file=sys.stderr)
        return 2
    providers = [args.provider] if args.provider else list(PROVIDERS)

    async def run() -> int:
        services = await bootstrap(settings, endpoints.database_url, endpoints.redis_url)
        mismatched, ran = False, 0
        try:
            for provider in providers:  # bad arguments change nothing: checked before anything is read
                check_reconcile(Reconcile(tenant_id=uuid4(), provider=provider, day=day), today=today)
            for provider in providers:
                async with services.uow_factory(read_only=True) as uow:
                    tenants = await uow.reconciliations.tenants(provider, name=args.tenant)
                if args.tenant and not tenants:
                    print(f"payments reconcile: no tenant is named {args.tenant!r}", file=sys.stderr)
                    return 2
                reports = await fetch_reports(services.provider(provider), day, today=today) if tenants else None
                for tenant in tenants:
                    cmd = Reconcile(tenant_id=tenant, provider=provider, day=day, correlation_id=f"cli-reconcile-{day}")
                    assert reports is not None
                    done = await run_reconciliation(cmd, reports, uow_factory=services.uow_factory,
                                                    clock=services.clock,
                                                    grace=timedelta(seconds=settings.reconcile.grace))
                    ran += 1
                    mismatched |= bool(done.mismatches or done.failure_reason)
                    counts = ", ".join(f"{result.value} {done.summary[result]}" for result in MatchResult)
                    print(f"{done.id}  tenant {tenant}  {provider}  {day}  {done.status}: "
                          f"{done.failure_reason or counts}")
                    for item in done.items:
                        view = reconciliation_item_view(item)
                        print("  " + "  ".join(f"{key}={value}" for key, value in view.items()))
        except CoreError as error:
            print(f"payments reconcile: {error.detail}", file=sys.stderr)
            return 2 if error.code == "validation_error" else 1
        finally:
            await services.aclose()
        print(f"{ran} reconciliation(s) of {day}: " + ("mismatches found" if mismatched else
                                                        "everything matched" if ran else "no tenant settles there"),
              file=sys.stderr)
        return 1 if mismatched else 0

    return asyncio.run(run())

"""Batches of transfers and their dry runs (API.md §10), on the posting path of single transfers.

An atomic batch is one unit of work: every account it names is locked once, in ascending id order (the
order every transfer locks in, so batches and transfers cannot deadlock), its transfers are booked in
order in memory (a later one may spend what an earlier one credited), and leaving the unit of work writes
all their payments, entries, events and outbox rows in its one batched statement. A non-atomic batch is
the same unit of work, except that a transfer that fails is left out and the others are written: each
transfer is checked against the balances the transfers before it left, exactly as if they had been posted
one by one while the batch held the accounts. A dry run books the same way in a read-only unit of work
with throwaway ids (`core.ids.provisional_ids`), so nothing is written and no id is consumed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from datetime import datetime
from operator import attrgetter
from typing import Any
from uuid import UUID

import attrs

from core.accounts import Account
from core.batches import BalanceChange, Batch, BatchResult, LegResult, limit_problems
from core.commands import Command
from core.errors import BatchFailed, CoreError, LegFailure, ValidationFailed, found
from core.ids import new_id, provisional_ids
from core.ports import Clock, UnitOfWork, UnitOfWorkFactory
from core.usecases.hold_expiry import release_all_due
from core.usecases.transfers import MakeTransfer, book_transfer

#: Renders a batch's answer: the response body, which is also what is stored for `GET /batches/{id}`.
BatchView = Callable[[BatchResult], dict[str, Any]]


@attrs.frozen(kw_only=True)
class BatchTransfer:
    """One transfer of a batch, and the caller's own `reference` for it (echoed in its result)."""

    transfer: MakeTransfer
    reference: str | None = None


@attrs.frozen(kw_only=True)
class PostBatch(Command):
    """Make `transfers` in order: all or nothing when `atomic`, each on its own otherwise."""

    transfers: tuple[BatchTransfer, ...]
    atomic: bool = True
    dry_run: bool = False

    def __attrs_post_init__(self) -> None:
        """API.md §10's limits hold for every batch: `ValidationFailed` names what breaks them."""
        if problems := limit_problems([leg.reference for leg in self.transfers]):
            raise ValidationFailed(problems)

    @functools.cached_property
    def locked_accounts(self) -> tuple[UUID, ...]:
        """Every account the batch names, once, ascending: declare them to the `UnitOfWorkFactory`.

        Computed once (the route, the unit of work and the lock all ask), sorted by the ids' integers: the order
        `UUID`'s comparison gives, without a Python call per comparison; sorting it again later is then cheap."""
        return tuple(sorted({account for leg in self.transfers for account in leg.transfer.locked_accounts},
                            key=attrgetter("int")))


async def post_batch(cmd: PostBatch, *, uow: UnitOfWork, clock: Clock, view: BatchView) -> BatchResult:
    """Lock the batch's accounts once, book its transfers in order and store the batch as `view` renders it.

    Raises `BatchFailed`, naming every failing transfer, when an atomic batch would fail: the unit of work
    then rolls back, and nothing is written. A transfer that fails is booked as if it were left out, so the
    transfers after it are checked (and reported) against the balances they would really meet.
    """
    locked = await uow.accounts.lock(cmd.tenant_id, cmd.locked_accounts)
    at = clock.now()
    await release_all_due(uow, locked.values(), at)
    before = {account_id: account.balance for account_id, account in locked.items()}
    results = tuple(_book(index, leg, locked, uow, at) for index, leg in enumerate(cmd.transfers))
    failures = [LegFailure(result.index, result.error) for result in results if result.error is not None]
    if cmd.atomic and failures:
        raise BatchFailed(failures)
    result = BatchResult(id=None if cmd.dry_run else new_id(), atomic=cmd.atomic, dry_run=cmd.dry_run,
                         results=results, balances=_balances(cmd, locked, before), created_at=at)
    if result.id is not None:
        uow.batches.add(Batch(id=result.id, tenant_id=cmd.tenant_id, atomic=cmd.atomic, status=result.status,
                              transfers=len(results), view=view(result), created_at=at))
    return result


async def dry_run_batch(cmd: PostBatch, *, uow_factory: UnitOfWorkFactory, clock: Clock,
                        view: BatchView) -> BatchResult:
    """Check and compute the batch exactly as `post_batch` would, in a read-only unit of work (nothing is
    written) with throwaway ids (none is consumed). Raises `BatchFailed` as the real run would."""
    with provisional_ids():
        async with uow_factory(read_only=True, lock_accounts=cmd.locked_accounts) as uow:
            return await post_batch(attrs.evolve(cmd, dry_run=True), uow=uow, clock=clock, view=view)


async def get_batch(tenant_id: UUID, batch_id: UUID, *, uow: UnitOfWork) -> Batch:
    """The batch as it was answered. Raises `NotFound`."""
    return found(await uow.batches.get(tenant_id, batch_id), f"batch {batch_id}")


def _book(index: int, leg: BatchTransfer, locked: Mapping[UUID, Account], uow: UnitOfWork,
          at: datetime) -> LegResult:
    try:
        payment = book_transfer(leg.transfer, locked, uow=uow, at=at)
    except CoreError as error:
        if error.transient:
            raise
        return LegResult(index=index, reference=leg.reference, error=error)
    return LegResult(index=index, reference=leg.reference, payment=payment)


def _balances(cmd: PostBatch, locked: Mapping[UUID, Account], before: Mapping[UUID, int]) -> tuple[BalanceChange, ...]:
    """The balance before and after of each user account the batch names, in the order it first names them."""
    named = dict.fromkeys(account for leg in cmd.transfers for account in leg.transfer.locked_accounts)
    return tuple(BalanceChange(account_id=account.id, currency=account.currency, before=before[account.id],
                               after=account.balance)
                 for account in (locked.get(account_id) for account_id in named)
                 if account is not None and account.is_user)

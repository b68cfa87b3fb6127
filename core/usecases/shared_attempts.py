"""The units of work of a worker's payment attempts, shared by the attempts that wait together (`SharedUnits`): the
begin (`pending -> processing`, optimistic) and a charge's completion (clearing -> settlement)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from uuid import UUID

import attrs

from core.accounts import CLEARING, settlement
from core.ports import UnitOfWork, UnitOfWorkFactory
from core.usecases.shared_units import SharedUnits


@attrs.frozen
class PaymentClaim:
    """What a shared unit of work reads or locks for one payment before its work runs: the payment, and for a
    completion the accounts it moves money between (the provider's settlement account and clearing, in `currency`)."""

    payment_id: UUID
    currency: str = ""
    provider: str | None = None


@attrs.frozen
class SharedAttempts:
    """The two shared units of work of payment attempts (issue 12: a worker's round trips and commits per payment)."""

    begins: SharedUnits[PaymentClaim]
    completions: SharedUnits[PaymentClaim]


def shared_attempts(uow_factory: UnitOfWorkFactory, *, group_size: int = 32,
                    observe: Callable[[str, int], None] | None = None) -> SharedAttempts:
    def told(what: str) -> Callable[[int], None] | None:
        return None if observe is None else (lambda size: observe(what, size))
    return SharedAttempts(
        begins=SharedUnits(uow_factory=uow_factory, optimistic=True, prepare=read_payments, group_size=group_size,
                           observe=told("begin")),
        completions=SharedUnits(uow_factory=uow_factory, optimistic=False, prepare=lock_for_completion,
                                group_size=group_size, observe=told("completion")))


async def read_payments(uow: UnitOfWork, tenant_id: UUID, claims: Sequence[PaymentClaim]) -> None:
    """The begin: the payments, read in one statement (no lock: the begin's write is version-checked)."""
    await uow.payments.get_all(tenant_id, [claim.payment_id for claim in claims])


async def lock_for_completion(uow: UnitOfWork, tenant_id: UUID, claims: Sequence[PaymentClaim]) -> None:
    """A completion's locks, for all of a group in the order one completion takes them: the payments (ascending id),
    then per currency the settlement accounts (by provider) and clearing last (`payment_outcome._settle`). Every
    group takes them in this order, and a lone completion's payment, settlement, clearing is a part of it."""
    await uow.payments.lock_all(tenant_id, sorted({claim.payment_id for claim in claims}))
    for currency in sorted({claim.currency for claim in claims}):
        providers = sorted({claim.provider for claim in claims if claim.currency == currency and claim.provider})
        await uow.accounts.lock_systems(tenant_id, [*(settlement(name) for name in providers), CLEARING], currency)

"""Posting money between accounts inside a unit of work: balanced entries added, the changed accounts saved."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import attrs

from core.accounts import Account
from core.commands import Command
from core.ledger import post
from core.money import Money
from core.ports import UnitOfWork


@attrs.frozen(kw_only=True)
class MoneyOut(Command):
    """What every command moving money out of a user account carries (a transfer, an external payment)."""

    source_account_id: UUID
    amount: Money
    description: str | None = None
    metadata: dict[str, str] = attrs.field(factory=dict)


def move(
    uow: UnitOfWork, legs: list[tuple[Account, int]], at: datetime, *, payment_id: UUID | None = None,
    refund_id: UUID | None = None,
) -> None:
    """Post balanced legs and buffer the changed accounts and their entries."""
    uow.ledger.add(post(legs, at=at, payment_id=payment_id, refund_id=refund_id))
    for account, _ in legs:
        uow.accounts.save(account)

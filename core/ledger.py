"""Double-entry postings: entries that sum to zero in one currency, each recording its balance after."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import attrs

from core.accounts import Account
from core.errors import CurrencyMismatch, FieldError, InsufficientFunds, ValidationFailed
from core.ids import new_id


@attrs.frozen(kw_only=True)
class Entry:
    """One line of the ledger: a signed amount on one account and the balance it left."""

    id: UUID
    tenant_id: UUID
    account_id: UUID
    posting_id: UUID
    payment_id: UUID | None
    refund_id: UUID | None = None
    seq: int
    type: str
    amount: int
    balance_after: int
    currency: str
    created_at: datetime


#: Balances are BIGINT; funding accounts grow with every initial balance, so cap them well inside it.
MAX_BALANCE = 2**62


def post(
    legs: Sequence[tuple[Account, int]],
    *,
    at: datetime,
    payment_id: UUID | None = None,
    refund_id: UUID | None = None,
) -> list[Entry]:
    """Apply a balanced set of (account, signed amount) legs and return their entries.

    Raises `CurrencyMismatch` if the accounts' currencies differ and
    `InsufficientFunds` (from `Account.apply`) if a user account would go negative.
    A leg set that does not sum to zero is a programming error (ValueError).
    """
    currencies = {account.currency for account, _ in legs}
    if len(currencies) != 1:
        raise CurrencyMismatch("a posting's accounts must share one currency")
    if sum(amount for _, amount in legs) != 0 or any(amount == 0 for _, amount in legs):
        raise ValueError("a posting's entries must be non-zero and sum to zero")
    for account, amount in legs:  # check every leg before changing any account
        if account.is_user and account.balance + amount < 0:
            raise InsufficientFunds(f"account {account.id} has insufficient funds")
        if abs(account.balance + amount) > MAX_BALANCE:
            raise ValidationFailed([FieldError("amount", "would take a balance beyond the supported range")])
    posting_id = new_id()
    entries = []
    for account, amount in legs:
        balance_after = account.apply(amount, at)
        entries.append(
            Entry(
                id=new_id(),
                tenant_id=account.tenant_id,
                account_id=account.id,
                posting_id=posting_id,
                payment_id=payment_id,
                refund_id=refund_id,
                seq=account.version,
                type="credit" if amount > 0 else "debit",
                amount=amount,
                balance_after=balance_after,
                currency=account.currency,
                created_at=at,
            )
        )
    return entries

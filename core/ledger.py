"""Double-entry postings: entries that sum to zero in one currency, each recording its balance after and
chained to the account's previous entry by its hash."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from uuid import UUID

import attrs

from core.accounts import Account
from core.errors import CurrencyMismatch, FieldError, ValidationFailed
from core.hash_chain import GENESIS, entry_hash
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
    #: SHA-256 over the account's previous entry's hash and this entry's fields (`core.hash_chain`), 32 bytes.
    hash: bytes

    def chains_from(self, previous: bytes) -> bool:
        """Whether this entry's hash is the one computed from its fields after an entry hashed `previous`."""
        return self.hash == entry_hash(
            previous, id=self.id, account_id=self.account_id, payment_id=self.payment_id, type=self.type,
            amount=self.amount, balance_after=self.balance_after, currency=self.currency, created_at=self.created_at)


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
    `InsufficientFunds` (`Account.check_funds`) if a user account would go below its overdraft limit.
    A leg set that does not sum to zero is a programming error (ValueError).
    """
    currencies = {account.currency for account, _ in legs}
    if len(currencies) != 1:
        raise CurrencyMismatch("a posting's accounts must share one currency")
    if sum(amount for _, amount in legs) != 0 or any(amount == 0 for _, amount in legs):
        raise ValueError("a posting's entries must be non-zero and sum to zero")
    for account, amount in legs:  # check every leg before changing any account
        account.check_funds(amount)
        if abs(account.balance + amount) > MAX_BALANCE:
            raise ValidationFailed([FieldError("amount", "would take a balance beyond the supported range")])
    posting_id = new_id()
    entries = []
    for account, amount in legs:
        balance_after = account.apply(amount, at)
        entry_id, kind = new_id(), "credit" if amount > 0 else "debit"
        # The account is locked, so its last hash is its latest entry's: reading it from the row costs
        # no round trip, and two legs on one account chain one after the other.
        account.last_entry_hash = entry_hash(
            account.last_entry_hash, id=entry_id, account_id=account.id, payment_id=payment_id, type=kind,
            amount=amount, balance_after=balance_after, currency=account.currency, created_at=at)
        entries.append(
            Entry(
                id=entry_id,
                tenant_id=account.tenant_id,
                account_id=account.id,
                posting_id=posting_id,
                payment_id=payment_id,
                refund_id=refund_id,
                seq=account.version,
                type=kind,
                amount=amount,
                balance_after=balance_after,
                currency=account.currency,
                created_at=at,
                hash=account.last_entry_hash,
            )
        )
    return entries


def chain_problems(account_id: UUID, entries: Sequence[Entry], last_entry_hash: bytes) -> list[str]:
    """What breaks an account's hash chain: its first broken entry (which, and why), and a chain head
    (`Account.last_entry_hash`) that is not its latest entry's hash. `entries` are the account's, by `seq`.

    `PgLedgerAudit` finds and words the same problems in SQL (adapters/postgres/ledger.py).
    """
    problems, previous, previous_seq = [], GENESIS, 0
    for entry in entries:
        if not entry.chains_from(previous):
            problems.append(f"account {account_id}: entry {entry.id} (seq {entry.seq}) breaks the hash chain: "
                            f"{_why(entry, previous_seq, entries)}")
            break
        previous, previous_seq = entry.hash, entry.seq
    latest = entries[-1] if entries else None
    if latest is not None and last_entry_hash != latest.hash:
        problems.append(f"account {account_id}: last_entry_hash does not match its latest entry {latest.id} "
                        f"(seq {latest.seq}): entries after it were removed, it was moved, or the account row was "
                        "changed")
    elif latest is None and last_entry_hash != GENESIS:
        problems.append(f"account {account_id}: last_entry_hash is not the genesis value, yet it has no entries: "
                        "they were removed, or the account row was changed")
    return problems


def _why(broken: Entry, previous_seq: int, entries: Sequence[Entry]) -> str:
    """Why the first entry whose hash does not follow from the entry before it breaks the chain."""
    if broken.seq != previous_seq + 1:
        first, last = previous_seq + 1, broken.seq - 1
        return f"entries before it are missing (seq {first}{f' to {last}' if last > first else ''})"
    if broken.chains_from(GENESIS):
        return "it is out of place: it was written as the account's first entry"
    after = next((e for e in entries if e.id != broken.id and broken.chains_from(e.hash)), None)
    if after is not None:
        return f"it is out of place: it was written after entry {after.id} (seq {after.seq})"
    return "its hash does not match its fields: it, or the entry before it, was changed"


@attrs.frozen(kw_only=True)
class Window:
    """What an account's entries with `start ≤ created_at < end` add up to (a statement's totals).

    The entries of a window are those with `first_seq ≤ seq ≤ last_seq` and a time inside it; entries are
    append-only, so that set never changes once the window has been read, however long a statement takes to
    stream. `opening` is the balance just before the window's first entry (or at `start` when it has none).
    """

    first_seq: int | None
    last_seq: int | None
    count: int
    credits: int
    debits: int  # ≤ 0
    opening: int

    @property
    def closing(self) -> int:
        return self.opening + self.credits + self.debits


@attrs.frozen(kw_only=True)
class PostedBalance:
    """An account's posted balance as it was at `as_of`: that of its latest entry then (0 before the first)."""

    account: Account
    balance: int
    version: int
    as_of: datetime


@attrs.frozen(kw_only=True)
class Statement:
    """An account's entries with `start ≤ created_at < end`: their totals now, their pages as they stream."""

    account: Account
    start: datetime
    end: datetime
    window: Window


_ACCOUNT_ID = re.compile(r"\baccount ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b")


def row_label(tenant_id: UUID, kind: str, currency: str, shard: int) -> str:
    """How the audit names one row of a system account: `row 3 of tenant <id>'s clearing USD account`."""
    return f"row {shard} of tenant {tenant_id}'s {kind} {currency} account"


def name_system_rows(problems: Sequence[str], labels: Mapping[str, str]) -> list[str]:
    """The audit's `problems`, each row of a system account named by the account it belongs to (a system account is
    `SYSTEM_SHARDS` rows, each with an id of its own that appears nowhere else): `account <row id> (row 3 of
    tenant <id>'s clearing USD account)`. `labels` maps a system row's id to its `row_label`; user accounts are
    one row, and their lines are left as they are."""
    def named(found: re.Match[str]) -> str:
        label = labels.get(found.group(1))
        return found.group(0) if label is None else f"{found.group(0)} ({label})"
    return [_ACCOUNT_ID.sub(named, line) for line in problems]

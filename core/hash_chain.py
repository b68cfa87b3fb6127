"""The tamper-evident chain of an account's ledger entries: what an entry's `hash` is computed over.

An entry's hash is SHA-256 over the previous entry's hash on the same account and the entry's own fields
(API.md §4). The text hashed is spelled out in docs/design.md ("Tamper-evident entries") so that anyone can
verify a chain; migration 0017's `ledger_entry_hash` computes the same text in SQL, and a test holds the two
to the same fixed vectors.

Hashes are held as their 32 bytes (PostgreSQL `bytea`); the text hashed carries the previous hash as 64
lower-case hex characters, and the API shows a hash the same way (`.hex()`).
"""

from __future__ import annotations

import functools
import hashlib
from datetime import UTC, datetime
from uuid import UUID

#: The "previous hash" of an account's first entry: 32 zero bytes (SHA-256's width; 64 zeros in hex).
GENESIS = bytes(32)


def canonical(
    previous: bytes, *, id: UUID, account_id: UUID, payment_id: UUID | None, type: str, amount: int,
    balance_after: int, currency: str, created_at: datetime,
) -> str:
    """The text an entry's hash is computed over: the previous hash (in lower-case hex) and eight fields joined by
    `|` (none can hold one).

    Ids are lower-case hyphenated UUIDs; a missing payment is the empty string; amounts are signed
    integer minor units in decimal; `created_at` is UTC at millisecond precision, exactly as the API
    renders it (so a client can verify a chain from `GET /accounts/{id}/transactions` alone).
    """
    return "|".join((
        previous.hex(), str(id), str(account_id), "" if payment_id is None else str(payment_id), type, str(amount),
        str(balance_after), currency, _instant(created_at),
    ))


def entry_hash(
    previous: bytes, *, id: UUID, account_id: UUID, payment_id: UUID | None, type: str, amount: int,
    balance_after: int, currency: str, created_at: datetime,
) -> bytes:
    """The entry's hash: the SHA-256 digest (32 bytes) of the UTF-8 bytes of `canonical(...)`."""
    text = canonical(previous, id=id, account_id=account_id, payment_id=payment_id, type=type, amount=amount,
                     balance_after=balance_after, currency=currency, created_at=created_at)
    return hashlib.sha256(text.encode()).digest()


@functools.lru_cache(maxsize=256)
def _instant(at: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SS.mmmZ` in UTC, sub-millisecond digits dropped (not rounded), as PostgreSQL's
    `to_char(... 'MS')` does. Written out field by field: `strftime("%Y")` does not pad years below 1000.
    Kept for the next call: every entry of a posting (two per transfer, two hundred in a batch of a hundred)
    has its one instant; equal aware datetimes are the same UTC instant, so they render the same text."""
    if at.utcoffset() is None:
        raise ValueError("an entry's created_at must carry its time zone")
    u = at.astimezone(UTC)
    return (f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}."
            f"{u.microsecond // 1000:03d}Z")

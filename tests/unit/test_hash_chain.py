"""core.hash_chain and the chain checks of core.ledger: the text hashed, fixed vectors, and each kind of tampering
found and named (editing, removing and reordering entries, a chain head left behind)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID, uuid4

import attrs
import pytest

from core.accounts import FUNDING, USER, Account
from core.hash_chain import GENESIS, canonical, entry_hash
from core.ledger import Entry, chain_problems, post

ACCOUNT = UUID("0190a1b2-0000-7000-8000-000000000001")

#: (fields, the exact text hashed, its SHA-256) — the digests come from `printf '%s' TEXT | sha256sum`, not from
#: the code under test, and docs/design.md quotes the first one.
VECTORS = [
    (dict(previous=GENESIS, id=UUID("0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b"), account_id=ACCOUNT, payment_id=None,
          type="credit", amount=100_000, balance_after=100_000, currency="USD",
          created_at=datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)),
     f"{GENESIS.hex()}|0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b|0190a1b2-0000-7000-8000-000000000001||credit|100000|100000|USD|"
     "2025-01-02T03:04:05.678Z",
     "bb0b172c488d0d4f2b670278e5ac6c5b6c3e8e96bbd1e2240264f7590918e587"),
    # chained from the first; a payment; a negative amount; a time given in +01:00 with .999999 s (truncated)
    (dict(previous=bytes.fromhex("bb0b172c488d0d4f2b670278e5ac6c5b6c3e8e96bbd1e2240264f7590918e587"),
          id=UUID("0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2c"), account_id=ACCOUNT,
          payment_id=UUID("0190a1b2-0000-7000-8000-0000000000aa"), type="debit", amount=-2550, balance_after=97_450,
          currency="USD", created_at=datetime(2025, 1, 2, 4, 4, 5, 999999, tzinfo=timezone(timedelta(hours=1)))),
     "bb0b172c488d0d4f2b670278e5ac6c5b6c3e8e96bbd1e2240264f7590918e587|0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2c|"
     "0190a1b2-0000-7000-8000-000000000001|0190a1b2-0000-7000-8000-0000000000aa|debit|-2550|97450|USD|"
     "2025-01-02T03:04:05.999Z",
     "5733abfd52451263aa765413bb4e5ba25e6aae38297a39dc8af36568a207fb8b"),
    # a balance of zero, a three-digit currency, a whole second
    (dict(previous=GENESIS, id=UUID("0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2d"),
          account_id=UUID("0190a1b2-0000-7000-8000-000000000002"),
          payment_id=UUID("0190a1b2-0000-7000-8000-0000000000bb"), type="debit", amount=-1000, balance_after=0,
          currency="KWD", created_at=datetime(1999, 12, 31, 23, 59, 59, 500, tzinfo=UTC)),
     f"{GENESIS.hex()}|0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2d|0190a1b2-0000-7000-8000-000000000002|"
     "0190a1b2-0000-7000-8000-0000000000bb|debit|-1000|0|KWD|1999-12-31T23:59:59.000Z",
     "200f1786af57c2bd652cdcfb37ecaded62d62e76893ce23421bd7ee5ab68bd2d"),
]
AT = datetime(2025, 3, 4, 5, 6, 7, 891234, tzinfo=UTC)


@pytest.mark.parametrize(("fields", "text", "digest"), VECTORS)
def test_fixed_vectors(fields: dict, text: str, digest: str) -> None:
    previous = fields["previous"]
    rest = {k: v for k, v in fields.items() if k != "previous"}
    assert canonical(previous, **rest) == text
    assert entry_hash(previous, **rest) == bytes.fromhex(digest)


def test_a_time_without_a_zone_is_refused() -> None:
    fields = {k: v for k, v in VECTORS[0][0].items() if k != "previous"}
    with pytest.raises(ValueError, match="time zone"):
        entry_hash(GENESIS, **{**fields, "created_at": datetime(2025, 1, 2, 3, 4, 5)})


def test_every_field_changes_the_hash() -> None:
    fields = {k: v for k, v in VECTORS[1][0].items() if k != "previous"}
    previous, digest = VECTORS[1][0]["previous"], bytes.fromhex(VECTORS[1][2])
    changed = {"id": uuid4(), "account_id": uuid4(), "payment_id": None, "type": "credit", "amount": -2551,
               "balance_after": 97_451, "currency": "EUR",
               "created_at": fields["created_at"] + timedelta(milliseconds=1)}
    assert set(changed) == set(fields)
    for name, value in changed.items():
        assert entry_hash(previous, **{**fields, name: value}) != digest, name
    assert entry_hash(GENESIS, **fields) != digest


def account(kind: str = USER, balance: int = 0) -> Account:
    return Account(id=uuid4(), tenant_id=uuid4(), kind=kind, currency="USD", user_id="u" if kind == USER else None,
                   balance=balance, created_at=AT, updated_at=AT)


def fields_of(entry: Entry) -> dict:
    return {name: getattr(entry, name) for name in (
        "id", "account_id", "payment_id", "type", "amount", "balance_after", "currency", "created_at")}


def test_post_chains_each_entry_from_the_accounts_last_hash() -> None:
    a, funding = account(balance=0), account(FUNDING)
    assert a.last_entry_hash == funding.last_entry_hash == GENESIS
    first = post([(funding, -1000), (a, 1000)], at=AT)
    payment = uuid4()
    second = post([(a, -300), (funding, 300)], at=AT + timedelta(seconds=1), payment_id=payment)
    a_entries = [e for e in first + second if e.account_id == a.id]
    assert a_entries[0].hash == entry_hash(GENESIS, **fields_of(a_entries[0]))
    assert a_entries[1].hash == entry_hash(a_entries[0].hash, **fields_of(a_entries[1]))
    assert a_entries[1].payment_id == payment
    assert a.last_entry_hash == a_entries[1].hash
    assert funding.last_entry_hash == second[1].hash
    assert chain_problems(a.id, a_entries, a.last_entry_hash) == []


def test_two_legs_on_one_account_chain_one_after_the_other() -> None:
    a, b = account(balance=100), account()
    a.last_entry_hash = bytes.fromhex("ab" * 32)
    entries = post([(a, -10), (b, 4), (a, -5), (b, 11)], at=AT)
    mine = [e for e in entries if e.account_id == a.id]
    assert [e.seq for e in mine] == [1, 2]
    assert mine[0].chains_from(bytes.fromhex("ab" * 32)) and mine[1].chains_from(mine[0].hash)
    assert a.last_entry_hash == mine[1].hash


def entries_of(a: Account, funding: Account) -> list[Entry]:
    """`a`'s five entries: funded, then four debits of the same amount (so that two of them can swap places
    with their balance_after and created_at and still add up)."""
    entries = [e for e in post([(funding, -1000), (a, 1000)], at=AT) if e.account_id == a.id]
    for n in range(4):
        entries += [e for e in post([(a, -100), (funding, 100)], at=AT + timedelta(seconds=n + 1),
                                    payment_id=uuid4()) if e.account_id == a.id]
    return entries


def problems(a: Account, entries: list[Entry]) -> list[str]:
    return chain_problems(a.id, sorted(entries, key=lambda e: e.seq), a.last_entry_hash)


def test_an_untouched_chain_has_no_problem() -> None:
    a = account()
    entries = entries_of(a, account(FUNDING))
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert problems(a, entries) == []


def test_an_edited_amount_is_named() -> None:
    a = account()
    entries = entries_of(a, account(FUNDING))
    entries[2] = attrs.evolve(entries[2], amount=-1)
    assert problems(a, entries) == [
        f"account {a.id}: entry {entries[2].id} (seq 3) breaks the hash chain: its hash does not match its fields: "
        "it, or the entry before it, was changed"]


@pytest.mark.parametrize("change", [{"payment_id": None}, {"created_at": AT}, {"balance_after": 7}, {"type": "credit"},
                                    {"currency": "EUR"}, {"hash": bytes(32)}])
def test_any_other_edit_is_named(change: dict) -> None:
    a = account()
    entries = entries_of(a, account(FUNDING))
    entries[1] = attrs.evolve(entries[1], **change)
    found = problems(a, entries)
    assert found[0].startswith(f"account {a.id}: entry {entries[1].id} (seq 2) breaks the hash chain"), found


def test_a_removed_entry_is_named_by_the_one_after_it() -> None:
    a = account()
    entries = entries_of(a, account(FUNDING))
    del entries[1]
    assert problems(a, entries) == [
        f"account {a.id}: entry {entries[1].id} (seq 3) breaks the hash chain: entries before it are missing (seq 2)"]
    del entries[1]
    assert problems(a, entries)[0].endswith("entries before it are missing (seq 2 to 3)")


def test_a_removed_latest_entry_leaves_the_chain_head_behind() -> None:
    a = account()
    entries = entries_of(a, account(FUNDING))
    entries.pop()
    assert problems(a, entries) == [
        f"account {a.id}: last_entry_hash does not match its latest entry {entries[-1].id} (seq 4): entries after "
        "it were removed, it was moved, or the account row was changed"]
    assert chain_problems(a.id, [], a.last_entry_hash) == [
        f"account {a.id}: last_entry_hash is not the genesis value, yet it has no entries: they were removed, "
        "or the account row was changed"]


def test_two_entries_that_swapped_places_are_named() -> None:
    """Swapped with their balance_after and created_at, two equal debits still add up (the balance audit sees
    nothing); the chain does not: the first of them is out of place."""
    a = account()
    entries = entries_of(a, account(FUNDING))
    second, third = entries[2], entries[3]
    entries[2] = attrs.evolve(third, seq=3, balance_after=second.balance_after, created_at=second.created_at)
    entries[3] = attrs.evolve(second, seq=4, balance_after=third.balance_after, created_at=third.created_at)
    running = 0
    for entry in entries:
        running += entry.amount
        assert entry.balance_after == running
    found = problems(a, entries)
    assert len(found) == 1 and f"entry {third.id} (seq 3) breaks the hash chain" in found[0]


def test_an_entry_moved_with_its_fields_intact_is_out_of_place() -> None:
    a = account()
    entries = entries_of(a, account(FUNDING))
    moved = [entries[0], entries[3], entries[1], entries[2], entries[4]]
    renumbered = [attrs.evolve(e, seq=n) for n, e in enumerate(moved, 1)]
    assert problems(a, renumbered)[0] == (
        f"account {a.id}: entry {entries[3].id} (seq 2) breaks the hash chain: it is out of place: it was written "
        f"after entry {entries[2].id} (seq 4)")
    first_second = [attrs.evolve(e, seq=n) for n, e in enumerate([entries[1], entries[0], *entries[2:]], 1)]
    assert problems(a, first_second)[0].endswith(
        f"entry {entries[1].id} (seq 1) breaks the hash chain: it is out of place: it was written after entry "
        f"{entries[0].id} (seq 2)")


def test_an_entry_forged_before_the_first_leaves_the_first_out_of_place() -> None:
    """A made-up entry whose hash is right (whoever forged it knew the encoding) put before the first: the chain
    breaks at the genuine first entry, which was written as the account's first."""
    a = account()
    entries = entries_of(a, account(FUNDING))
    forged = attrs.evolve(entries[0], id=uuid4(), seq=1, created_at=AT - timedelta(days=1))
    forged = attrs.evolve(forged, hash=entry_hash(GENESIS, **fields_of(forged)))
    shifted = [forged, *(attrs.evolve(e, seq=e.seq + 1) for e in entries)]
    assert problems(a, shifted)[0] == (
        f"account {a.id}: entry {entries[0].id} (seq 2) breaks the hash chain: it is out of place: it was written "
        "as the account's first entry")

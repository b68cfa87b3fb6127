"""Tamper-evident entries (API.md §4) on both ledgers: every entry written chains from the account's previous one,
and the audit names the first broken entry of an account whose stored entries were edited, removed or reordered.

Both audits must word a finding identically (the memory one in Python, PostgreSQL's in SQL), so the expected
lines are exact."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import pytest

from core.accounts import Account
from core.hash_chain import GENESIS
from core.ledger import Entry
from core.ports import UnitOfWorkFactory
from tests.contract.conftest import open_account, transfer

pytestmark = pytest.mark.timeout(30)


async def stored(uow_factory: UnitOfWorkFactory, account: Account) -> tuple[list[Entry], str]:
    """The account's entries, oldest first, and its last_entry_hash."""
    async with uow_factory() as uow:
        page = await uow.ledger.list(account.tenant_id, account.id, limit=100, cursor=None)
        row = await uow.accounts.get(account.tenant_id, account.id)
    assert page.next_cursor is None and row is not None
    return list(reversed(page.items)), row.last_entry_hash


async def history(uow_factory: UnitOfWorkFactory, clock: Any, tenant_id: Any) -> tuple[Account, list[Entry]]:
    """An account funded with 10.00, then four debits of 1.00 (equal, so two can swap places and still add up)."""
    a = await open_account(uow_factory, clock, tenant_id, 1_000)
    b = await open_account(uow_factory, clock, tenant_id, user_id="bob")
    for _ in range(4):
        await transfer(uow_factory, clock, tenant_id, a.id, b.id, 100)
    entries, _ = await stored(uow_factory, a)
    return a, entries


def mine(problems: list[str], account: Account) -> list[str]:
    return [line for line in problems if str(account.id) in line]


async def test_every_entry_chains_from_the_accounts_previous_one(uow_factory, clock, tenant, audit) -> None:
    a, entries = await history(uow_factory, clock, tenant.id)
    previous = GENESIS
    for entry in entries:
        assert len(entry.hash) == 32 and entry.chains_from(previous), entry
        previous = entry.hash
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert (await stored(uow_factory, a))[1] == entries[-1].hash
    assert mine(await audit.drift(), a) == []


def _edit_amount(entries: list[Entry]) -> tuple[list[Entry], Entry, str]:
    entries[2] = attrs.evolve(entries[2], amount=-99)
    return entries, entries[2], "its hash does not match its fields: it, or the entry before it, was changed"


def _edit_payment(entries: list[Entry]) -> tuple[list[Entry], Entry, str]:
    """Nothing but the hash covers which payment an entry belongs to."""
    entries[1] = attrs.evolve(entries[1], payment_id=entries[2].payment_id)
    return entries, entries[1], "its hash does not match its fields: it, or the entry before it, was changed"


def _delete(entries: list[Entry]) -> tuple[list[Entry], Entry, str]:
    del entries[2]
    return entries, entries[2], "entries before it are missing (seq 3)"


def _swap(entries: list[Entry]) -> tuple[list[Entry], Entry, str]:
    """Entries 3 and 4 trade their seq, and so their places, fields untouched."""
    third, fourth = entries[2], entries[3]
    entries[2:4] = [attrs.evolve(fourth, seq=3), attrs.evolve(third, seq=4)]
    return entries, entries[2], f"it is out of place: it was written after entry {third.id} (seq 4)"


def _swap_keeping_balances(entries: list[Entry]) -> tuple[list[Entry], Entry, str]:
    """Entries 3 and 4 trade places with their balance_after and created_at: as both moved 1.00, every balance
    still chains and times still ascend."""
    third, fourth = entries[2], entries[3]
    entries[2:4] = [attrs.evolve(fourth, seq=3, balance_after=third.balance_after, created_at=third.created_at),
                    attrs.evolve(third, seq=4, balance_after=fourth.balance_after, created_at=fourth.created_at)]
    return entries, entries[2], "its hash does not match its fields: it, or the entry before it, was changed"


async def tampered(
    uow_factory, clock, tenant, audit, probe, tamper: Callable[[list[Entry]], tuple[list[Entry], Entry, str]]
) -> tuple[Any, list[str], Entry, str]:
    """An account with a history, `tamper`ed in the store: (the account, what the audit says of it then, the entry
    it must name, why). The history is put back afterwards, and the audit must then be clean again."""
    a, original = await history(uow_factory, clock, tenant.id)
    changed, broken, why = tamper(list(original))
    await probe.rewrite(a.id, changed)
    try:
        problems = mine(await audit.drift(), a)
    finally:
        await probe.rewrite(a.id, original)
    assert mine(await audit.drift(), a) == []
    return a, problems, broken, why


@pytest.mark.parametrize("tamper", [_edit_amount, _edit_payment, _delete, _swap])
async def test_the_audit_names_the_first_broken_entry(
    uow_factory, clock, tenant, audit, probe, tamper: Callable[[list[Entry]], tuple[list[Entry], Entry, str]]
) -> None:
    a, problems, broken, why = await tampered(uow_factory, clock, tenant, audit, probe, tamper)
    assert f"account {a.id}: entry {broken.id} (seq {broken.seq}) breaks the hash chain: {why}" in problems


async def test_a_swap_that_keeps_balances_chaining_is_seen_by_the_hash_alone(
    uow_factory, clock, tenant, audit, probe
) -> None:
    a, problems, broken, why = await tampered(uow_factory, clock, tenant, audit, probe, _swap_keeping_balances)
    assert problems == [f"account {a.id}: entry {broken.id} (seq 3) breaks the hash chain: {why}"]


async def test_a_removed_latest_entry_is_seen_by_the_chain_head(uow_factory, clock, tenant, audit, probe) -> None:
    """The latest entry removed and the balance and version set back to match: only last_entry_hash tells."""
    a, original = await history(uow_factory, clock, tenant.id)
    await probe.rewrite(a.id, original[:-1])
    await probe.shift(a.id, balance=100, version=-1)
    try:
        problems = mine(await audit.drift(), a)
    finally:
        await probe.shift(a.id, balance=-100, version=1)
        await probe.rewrite(a.id, original)
    assert problems == [f"account {a.id}: last_entry_hash does not match its latest entry {original[-2].id} (seq 4): "
                        "entries after it were removed, it was moved, or the account row was changed"]
    assert mine(await audit.drift(), a) == []

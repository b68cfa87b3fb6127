"""core.ledger.post and core.accounts: balanced postings, balances after, overdraft rules, metadata."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from core.accounts import CLEARING, FUNDING, USER, Account, check_metadata, settlement
from core.errors import CurrencyMismatch, InsufficientFunds, ValidationFailed
from core.ledger import post

AT = datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
TENANT = uuid4()


def account(kind: str = USER, currency: str = "USD", balance: int = 0, version: int = 0) -> Account:
    return Account(
        id=uuid4(), tenant_id=TENANT, kind=kind, currency=currency, user_id="u1" if kind == USER else None,
        balance=balance, version=version, created_at=AT, updated_at=AT,
    )


def test_post_moves_money_and_records_each_leg() -> None:
    source, destination = account(balance=1000, version=3), account(balance=5, version=1)
    payment_id = uuid4()
    entries = post([(source, -300), (destination, 300)], at=AT, payment_id=payment_id)

    assert (source.balance, source.version, destination.balance, destination.version) == (700, 4, 305, 2)
    assert sum(e.amount for e in entries) == 0
    debit, credit = entries
    assert (debit.account_id, debit.amount, debit.type, debit.balance_after, debit.seq) == (
        source.id, -300, "debit", 700, 4)
    assert (credit.account_id, credit.amount, credit.type, credit.balance_after, credit.seq) == (
        destination.id, 300, "credit", 305, 2)
    assert debit.posting_id == credit.posting_id
    assert debit.id != credit.id
    assert {e.payment_id for e in entries} == {payment_id}
    assert {e.currency for e in entries} == {"USD"}
    assert {e.tenant_id for e in entries} == {TENANT}
    assert {e.created_at for e in entries} == {AT}
    assert source.updated_at == destination.updated_at == AT


def test_seq_equals_the_account_version_and_balance_after_chains() -> None:
    a, b = account(balance=100), account()
    running = {a.id: 100, b.id: 0}
    seen = []
    for amount in (10, 20, 30, 40):
        for entry in post([(a, -amount), (b, amount)], at=AT):
            running[entry.account_id] += entry.amount
            assert entry.balance_after == running[entry.account_id]
            seen.append(entry)
    assert [e.seq for e in seen if e.account_id == a.id] == [1, 2, 3, 4]
    assert [e.seq for e in seen if e.account_id == b.id] == [1, 2, 3, 4]
    assert (a.balance, b.balance) == (0, 100)
    assert len({e.posting_id for e in seen}) == 4


def test_a_posting_may_have_more_than_two_legs() -> None:
    source, x, y = account(balance=100), account(), account()
    entries = post([(source, -100), (x, 60), (y, 40)], at=AT)
    assert [e.amount for e in entries] == [-100, 60, 40]
    assert (source.balance, x.balance, y.balance) == (0, 60, 40)


@pytest.mark.parametrize("legs", [[-100, 99], [-100, 101], [0, 0], [-5, 0, 5], [100]])
def test_unbalanced_or_zero_legs_are_a_programming_error(legs: list[int]) -> None:
    accounts = [account(kind=FUNDING) for _ in legs]
    with pytest.raises(ValueError, match="sum to zero"):
        post(list(zip(accounts, legs, strict=True)), at=AT)
    assert all(a.balance == 0 and a.version == 0 for a in accounts)


def test_currency_mismatch_changes_nothing() -> None:
    usd, eur = account(balance=100), account(currency="EUR")
    with pytest.raises(CurrencyMismatch):
        post([(usd, -50), (eur, 50)], at=AT)
    assert (usd.balance, usd.version, eur.balance, eur.version) == (100, 0, 0, 0)


def test_a_user_account_cannot_go_negative() -> None:
    source, destination = account(balance=99), account()
    with pytest.raises(InsufficientFunds):
        post([(source, -100), (destination, 100)], at=AT)
    assert (source.balance, source.version, destination.balance, destination.version) == (99, 0, 0, 0)


def test_a_user_account_can_be_emptied_exactly() -> None:
    source, destination = account(balance=100), account()
    post([(source, -100), (destination, 100)], at=AT)
    assert source.balance == 0



def test_insufficient_funds_on_a_later_leg_changes_no_account() -> None:
    destination, source = account(), account(balance=10)
    with pytest.raises(InsufficientFunds):
        post([(destination, 100), (source, -100)], at=AT)
    assert (destination.balance, destination.version) == (0, 0)


@pytest.mark.parametrize("kind", [FUNDING, CLEARING, settlement("stripe")])
def test_system_accounts_may_go_negative(kind: str) -> None:
    system, user = account(kind=kind), account()
    entries = post([(system, -500), (user, 500)], at=AT)
    assert system.balance == -500
    assert entries[0].balance_after == -500
    assert not system.is_user and user.is_user


def test_settlement_kind() -> None:
    assert settlement("paypal") == "settlement:paypal"


# --- core.accounts.check_metadata -------------------------------------------------------------


@pytest.mark.parametrize(
    "metadata",
    [{}, {"a": "b"}, {"k" * 40: "v" * 500}, {f"key{i}": "v" for i in range(20)}, {"empty": ""}],
)
def test_check_metadata_accepts_valid_objects(metadata: dict[str, str]) -> None:
    result = check_metadata(metadata)
    assert result == metadata
    assert result is not metadata  # a copy: later changes to the input do not leak in


def test_check_metadata_treats_none_as_empty() -> None:
    assert check_metadata(None) == {}


@pytest.mark.parametrize(
    ("metadata", "field"),
    [
        ([("a", "b")], "metadata"),
        ("a=b", "metadata"),
        (5, "metadata"),
        ({f"key{i}": "v" for i in range(21)}, "metadata"),
        ({"k" * 41: "v"}, "metadata." + "k" * 41),
        ({"": "v"}, "metadata."),
        ({1: "v"}, "metadata.1"),
        ({"a": "v" * 501}, "metadata.a"),
        ({"a": 1}, "metadata.a"),
        ({"a": None}, "metadata.a"),
        ({"a": {"nested": "x"}}, "metadata.a"),
        ({"a": True}, "metadata.a"),
    ],
)
def test_check_metadata_rejects_and_names_the_field(metadata: object, field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        check_metadata(metadata)
    assert field in [e.field for e in caught.value.errors]


def test_check_metadata_reports_every_bad_entry_under_the_given_field() -> None:
    with pytest.raises(ValidationFailed) as caught:
        check_metadata({"ok": "v", "a": 1, "b": 2}, field="payment.metadata")
    assert sorted(e.field for e in caught.value.errors) == ["payment.metadata.a", "payment.metadata.b"]


def test_a_posting_cannot_take_a_balance_beyond_the_supported_range() -> None:
    from datetime import UTC, datetime

    from core.accounts import Account
    from core.errors import ValidationFailed
    from core.ids import new_id
    from core.ledger import MAX_BALANCE, post

    now = datetime.now(UTC)
    tenant = new_id()
    funding = Account(id=new_id(), tenant_id=tenant, kind="funding", currency="JPY", balance=-MAX_BALANCE + 5,
                      created_at=now, updated_at=now)
    user = Account(id=new_id(), tenant_id=tenant, kind="user", user_id="u", currency="JPY", created_at=now,
                   updated_at=now)
    with pytest.raises(ValidationFailed):
        post([(funding, -10), (user, 10)], at=now)
    assert (funding.balance, funding.version, user.balance, user.version) == (-MAX_BALANCE + 5, 0, 0, 0)

"""create_account and make_transfer on the in-memory store: effects, rules, and nothing left behind on failure."""

from __future__ import annotations

import copy
from uuid import UUID, uuid4

import pytest

from adapters.memory import InMemoryLedgerAudit, InMemoryStore
from core.accounts import FUNDING, USER, Account
from core.errors import CurrencyMismatch, InsufficientFunds, NotFound, SameAccount
from core.money import Money
from core.payments import PaymentStatus, PaymentType, fold
from core.usecases.accounts import CreateAccount, create_account, get_account, list_transactions
from core.usecases.payments import get_payment, list_payment_events
from core.usecases.transfers import MakeTransfer, make_transfer
from core.views import account_view, payment_view
from tests.unit.conftest import FakeClock


async def open_account(
    store: InMemoryStore, clock: FakeClock, tenant_id: UUID, balance: int | None = None, currency: str = "USD",
    user_id: str = "alice",
) -> Account:
    initial = Money(balance, currency) if balance is not None else None
    async with store() as uow:
        account = await create_account(
            CreateAccount(tenant_id=tenant_id, user_id=user_id, currency=currency, initial_balance=initial,
                          metadata={"tier": "gold"}, correlation_id="req-1"),
            uow=uow, clock=clock,
        )
    return account


def funding_of(store: InMemoryStore, tenant_id: UUID, currency: str = "USD") -> list[Account]:
    return [a for a in store.accounts.values()
            if (a.tenant_id, a.kind, a.currency) == (tenant_id, FUNDING, currency)]


async def test_create_account_without_initial_balance(store, clock, audit, tenant_id) -> None:
    account = await open_account(store, clock, tenant_id)

    stored = store.accounts[account.id]
    assert (stored.kind, stored.user_id, stored.currency, stored.balance, stored.version) == (
        USER, "alice", "USD", 0, 0)
    assert stored.metadata == {"tier": "gold"}
    assert stored.created_at == stored.updated_at
    assert store.entries == []
    assert funding_of(store, tenant_id) == []
    [message] = store.outbox
    assert (message.topic, message.aggregate_id, message.tenant_id) == ("account.created", account.id, tenant_id)
    assert message.payload == account_view(stored)
    assert message.correlation_id == "req-1"
    assert await audit.drift() == []


async def test_create_account_with_zero_initial_balance_posts_nothing(store, clock, tenant_id) -> None:
    account = await open_account(store, clock, tenant_id, balance=0)
    assert store.accounts[account.id].balance == 0
    assert store.entries == []


async def test_create_account_with_initial_balance_is_funded_from_the_funding_account(
    store, clock, audit, tenant_id
) -> None:
    first = await open_account(store, clock, tenant_id, balance=10_000)
    second = await open_account(store, clock, tenant_id, balance=2_500, user_id="bob")

    assert (store.accounts[first.id].balance, store.accounts[first.id].version) == (10_000, 1)
    assert store.accounts[second.id].balance == 2_500
    funding = funding_of(store, tenant_id)  # one row or two: each account creation locks one, picked at random
    assert (sum(a.balance for a in funding), sum(a.version for a in funding)) == (-12_500, 2)
    assert all(a.user_id is None and not a.is_user for a in funding) and 1 <= len(funding) <= 2
    assert len(store.entries) == 4
    mine = [e for e in store.entries if e.account_id == first.id]
    assert [(e.amount, e.balance_after, e.seq, e.type) for e in mine] == [(10_000, 10_000, 1, "credit")]
    assert store.outbox[0].payload["balance"] == "100.00"
    assert await audit.drift() == []


async def test_funding_accounts_are_per_tenant_and_currency(store, clock, audit, tenant_id) -> None:
    other_tenant = uuid4()
    await open_account(store, clock, tenant_id, balance=100)
    await open_account(store, clock, tenant_id, balance=7, currency="JPY")
    await open_account(store, clock, other_tenant, balance=300)
    assert [a.balance for a in funding_of(store, tenant_id)] == [-100]  # one account creation each: one row
    assert [a.balance for a in funding_of(store, tenant_id, "JPY")] == [-7]
    assert [a.balance for a in funding_of(store, other_tenant)] == [-300]
    assert await audit.drift() == []


async def test_an_uncommitted_create_account_leaves_no_trace(store, clock, tenant_id) -> None:
    with pytest.raises(RuntimeError, match="roll back"):
        async with store() as uow:
            await create_account(CreateAccount(tenant_id=tenant_id, user_id="u", currency="USD",
                                               initial_balance=Money(500, "USD")), uow=uow, clock=clock)
            raise RuntimeError("roll back")
    assert [a for a in store.accounts.values() if a.is_user] == []
    assert store.entries == [] and store.outbox == []
    assert all(a.balance == 0 for a in store.accounts.values())


async def test_get_account_is_scoped_to_the_tenant_and_to_user_accounts(store, clock, tenant_id) -> None:
    account = await open_account(store, clock, tenant_id, balance=100)
    [funding] = funding_of(store, tenant_id)  # one account created with a balance: one of funding's rows
    async with store() as uow:
        assert (await get_account(tenant_id, account.id, uow=uow)).balance == 100
        for tenant, account_id in [(uuid4(), account.id), (tenant_id, funding.id), (tenant_id, uuid4())]:
            with pytest.raises(NotFound):
                await get_account(tenant, account_id, uow=uow)
        with pytest.raises(NotFound):
            await list_transactions(uuid4(), account.id, limit=10, cursor=None, uow=uow)


# --- make_transfer -----------------------------------------------------------------------------


async def transfer(store: InMemoryStore, clock: FakeClock, tenant_id: UUID, source: UUID, destination: UUID,
                   amount: Money):
    async with store() as uow:
        payment = await make_transfer(
            MakeTransfer(tenant_id=tenant_id, source_account_id=source, destination_account_id=destination,
                         amount=amount, description="rent", metadata={"ref": "42"}, correlation_id="req-9"),
            uow=uow, clock=clock,
        )
    return payment


async def test_make_transfer_moves_money_and_records_everything(store, clock, audit, tenant_id) -> None:
    a = await open_account(store, clock, tenant_id, balance=10_000)
    b = await open_account(store, clock, tenant_id, balance=500, user_id="bob")

    payment = await transfer(store, clock, tenant_id, a.id, b.id, Money(2_550, "USD"))

    assert (payment.status, payment.payment_type, payment.amount, payment.currency) == (
        PaymentStatus.COMPLETED, PaymentType.INTERNAL_TRANSFER, 2_550, "USD")
    assert (payment.source_account_id, payment.destination_account_id) == (a.id, b.id)
    assert payment.completed_at is not None
    assert (store.accounts[a.id].balance, store.accounts[a.id].version) == (7_450, 2)
    assert (store.accounts[b.id].balance, store.accounts[b.id].version) == (3_050, 2)
    entries = [e for e in store.entries if e.payment_id == payment.id]
    assert sorted((e.account_id, e.amount, e.balance_after) for e in entries) == sorted(
        [(a.id, -2_550, 7_450), (b.id, 2_550, 3_050)])
    [message] = [m for m in store.outbox if m.topic == "transfer.completed"]
    assert message.aggregate_id == payment.id
    assert message.payload == payment_view(payment)
    assert message.payload["status"] == "completed" and message.payload["amount"] == "25.50"
    async with store() as uow:
        stored = await get_payment(tenant_id, payment.id, uow=uow)
        events = await list_payment_events(tenant_id, payment.id, uow=uow)
        page = await list_transactions(tenant_id, a.id, limit=10, cursor=None, uow=uow)
    assert (stored.status, stored.description, stored.metadata) == (PaymentStatus.COMPLETED, "rent", {"ref": "42"})
    assert [e.type for e in events] == ["payment.created", "payment.completed"]
    assert [e.sequence for e in events] == [0, 1]
    assert {e.correlation_id for e in events} == {"req-9"}
    assert fold(events) == stored.snapshot()
    assert [e.amount for e in page.items] == [-2_550, 10_000]
    assert await audit.drift() == []


async def test_payment_of_another_tenant_is_not_found(store, clock, tenant_id) -> None:
    a = await open_account(store, clock, tenant_id, balance=100)
    b = await open_account(store, clock, tenant_id)
    payment = await transfer(store, clock, tenant_id, a.id, b.id, Money(1, "USD"))
    async with store() as uow:
        with pytest.raises(NotFound):
            await get_payment(uuid4(), payment.id, uow=uow)
        with pytest.raises(NotFound):
            await list_payment_events(uuid4(), payment.id, uow=uow)


def snapshot(store: InMemoryStore) -> dict[str, object]:
    return {
        "accounts": copy.deepcopy(store.accounts), "entries": list(store.entries),
        "payments": copy.deepcopy(store.payments), "events": {k: list(v) for k, v in store.events.items() if v},
        "outbox": list(store.outbox), "idempotency": dict(store.idempotency),
    }


@pytest.mark.parametrize("case", ["same_account", "unknown_source", "unknown_destination", "other_tenant_source",
                                  "other_tenant_destination", "system_source", "system_destination",
                                  "currency_of_destination", "currency_of_amount", "insufficient_funds"])
async def test_make_transfer_rules_leave_nothing_changed(store, clock, audit, tenant_id, case: str) -> None:
    other_tenant = uuid4()
    a = await open_account(store, clock, tenant_id, balance=1_000)
    b = await open_account(store, clock, tenant_id, balance=50)
    eur = await open_account(store, clock, tenant_id, balance=50, currency="EUR")
    foreign = await open_account(store, clock, other_tenant, balance=1_000)
    funding = funding_of(store, tenant_id)[0]
    source, destination, amount, error = {
        "same_account": (a.id, a.id, Money(1, "USD"), SameAccount),
        "unknown_source": (uuid4(), b.id, Money(1, "USD"), NotFound),
        "unknown_destination": (a.id, uuid4(), Money(1, "USD"), NotFound),
        "other_tenant_source": (foreign.id, b.id, Money(1, "USD"), NotFound),
        "other_tenant_destination": (a.id, foreign.id, Money(1, "USD"), NotFound),
        "system_source": (funding.id, b.id, Money(1, "USD"), NotFound),
        "system_destination": (a.id, funding.id, Money(1, "USD"), NotFound),
        "currency_of_destination": (a.id, eur.id, Money(1, "USD"), CurrencyMismatch),
        "currency_of_amount": (a.id, b.id, Money(1, "EUR"), CurrencyMismatch),
        "insufficient_funds": (b.id, a.id, Money(51, "USD"), InsufficientFunds),
    }[case]
    before = snapshot(store)

    with pytest.raises(error):
        await transfer(store, clock, tenant_id, source, destination, amount)

    assert snapshot(store) == before
    assert await audit.drift() == []
    # every lock the failed unit of work took was released: the same accounts move again at once
    await transfer(store, clock, tenant_id, b.id, a.id, Money(50, "USD"))
    assert store.accounts[a.id].balance == 1_050


async def test_a_transfer_of_the_whole_balance_is_allowed(store, clock, audit, tenant_id) -> None:
    a = await open_account(store, clock, tenant_id, balance=1_000)
    b = await open_account(store, clock, tenant_id)
    await transfer(store, clock, tenant_id, a.id, b.id, Money(1_000, "USD"))
    assert (store.accounts[a.id].balance, store.accounts[b.id].balance) == (0, 1_000)
    with pytest.raises(InsufficientFunds):
        await transfer(store, clock, tenant_id, a.id, b.id, Money(1, "USD"))
    assert await audit.drift() == []


async def test_memory_audit_sees_a_broken_ledger(store, clock, tenant_id) -> None:
    a = await open_account(store, clock, tenant_id, balance=1_000)
    audit = InMemoryLedgerAudit(store)
    store.accounts[a.id].balance += 1
    assert any(str(a.id) in line for line in await audit.drift())

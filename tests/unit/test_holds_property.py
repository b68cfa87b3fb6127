"""A property of holds (issue 13): after any sequence of holds, captures, voids, transfers, external payments and
the passing of time (with or without the worker's sweep), every account's `available_balance` is its `balance`
less its active holds, as a read shows them at that instant; no user account's available balance is below minus
its overdraft limit; and the ledger (its `held` included) passes `ledger check`."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.memory import InMemoryLedgerAudit, InMemoryStore
from adapters.memory.clock import InMemoryClock
from core.errors import CoreError
from core.holds import HoldStatus
from core.money import Money
from core.usecases.accounts import CreateAccount, UpdateAccount, create_account, get_account, update_account
from core.usecases.external_payments import CreateExternalPayment, create_external_payment
from core.usecases.holds import CaptureHold, CreateHold, capture_hold, create_hold, expire_holds, void_hold
from core.usecases.transfers import MakeTransfer, make_transfer

TENANT = UUID("0191e5a0-0000-7000-8000-000000000002")
STEP = st.one_of(
    st.tuples(st.just("hold"), st.integers(0, 2), st.integers(0, 2), st.integers(1, 600), st.integers(60, 600)),
    st.tuples(st.just("capture"), st.integers(0, 9), st.integers(0, 700)),
    st.tuples(st.just("void"), st.integers(0, 9)),
    st.tuples(st.just("transfer"), st.integers(0, 2), st.integers(0, 2), st.integers(1, 600)),
    st.tuples(st.just("pay_out"), st.integers(0, 2), st.integers(1, 600)),
    st.tuples(st.just("wait"), st.integers(1, 400), st.booleans()),
    st.tuples(st.just("overdraft"), st.integers(0, 2), st.integers(0, 300)),
)


async def run(steps: list[tuple[Any, ...]]) -> None:
    store, clock = InMemoryStore(), InMemoryClock()
    ids, holds = [], []
    for n, opening in enumerate((1_000, 500, 0)):
        async with store() as uow:
            account = await create_account(CreateAccount(tenant_id=TENANT, user_id=f"u{n}", currency="USD",
                                                         initial_balance=Money(opening, "USD") if opening else None),
                                           uow=uow, clock=clock)
        ids.append(account.id)
    for step in steps:
        try:
            async with store() as uow:
                match step:
                    case ("hold", s, d, amount, expires_in):
                        holds.append((await create_hold(CreateHold(
                            tenant_id=TENANT, source_account_id=ids[s], destination_account_id=ids[d],
                            amount=Money(amount, "USD"), expires_in=expires_in), uow=uow, clock=clock)).id)
                    case ("capture", h, amount) if holds:
                        await capture_hold(CaptureHold(tenant_id=TENANT, hold_id=holds[h % len(holds)],
                                                       amount=None if amount == 0 else Decimal(amount) / 100), uow=uow,
                                           clock=clock)
                    case ("void", h) if holds:
                        await void_hold(TENANT, holds[h % len(holds)], uow=uow, clock=clock)
                    case ("transfer", s, d, amount):
                        await make_transfer(MakeTransfer(tenant_id=TENANT, source_account_id=ids[s],
                                                         destination_account_id=ids[d], amount=Money(amount, "USD")),
                                            uow=uow, clock=clock)
                    case ("pay_out", s, amount):
                        await create_external_payment(CreateExternalPayment(
                            tenant_id=TENANT, source_account_id=ids[s], amount=Money(amount, "USD"),
                            provider="stripe"), uow=uow, clock=clock)
                    case ("overdraft", s, limit):
                        await update_account(UpdateAccount(tenant_id=TENANT, account_id=ids[s],
                                                           overdraft_limit=limit), uow=uow, clock=clock)
                    case ("wait", seconds, _):
                        clock.advance(timedelta(seconds=seconds))
        except CoreError:
            pass
        if step[0] == "wait" and step[2]:
            await expire_holds(uow_factory=store, clock=clock)
        now = clock.now()
        for account_id in ids:
            async with store(read_only=True) as uow:
                account = await get_account(TENANT, account_id, uow=uow, now=now)
            active = sum(h.amount for h in store.holds.values()
                         if h.source_account_id == account_id and h.effective_status(now) is HoldStatus.ACTIVE)
            assert account.available_balance == account.balance - active, step
            assert account.available_balance >= -account.overdraft_limit, step
        assert await InMemoryLedgerAudit(store).drift() == [], step


@settings(max_examples=150, deadline=None)
@given(st.lists(STEP, min_size=1, max_size=30))
def test_available_balance_is_balance_less_active_holds_after_any_sequence(steps: list[tuple[Any, ...]]) -> None:
    asyncio.run(run(steps))

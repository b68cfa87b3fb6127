"""A property of the posting path (issue 12): any sequence of transfers leaves the same ledger whether it is
posted as single transfers, grouped by the group commit, as one atomic batch or as one non-atomic batch — the
same balances and versions, and the same entries (amount and balance after, in order) on every account; a
non-atomic batch (and a group) refuses exactly the transfers that, posted alone in turn, would have been
refused, and for the same reason."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from uuid import UUID

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.memory import InMemoryLedgerAudit, InMemoryStore
from app.http.routes.batches import view
from core.errors import BatchFailed, CoreError
from core.idempotency import IdempotentRequest, StoredResponse
from core.money import Money
from core.usecases.accounts import CreateAccount, create_account
from core.usecases.batches import BatchTransfer, PostBatch, post_batch
from core.usecases.group_commit import PostingEngine
from core.usecases.transfers import MakeTransfer, make_transfer
from tests.unit.conftest import FakeClock

TENANT = UUID("0191e5a0-0000-7000-8000-000000000001")
#: (currency, opening balance) per account: mostly USD, some EUR so that currency mismatches happen too.
ACCOUNTS = st.lists(st.tuples(st.sampled_from(["USD", "USD", "USD", "EUR"]), st.integers(0, 1_000)),
                    min_size=2, max_size=5)
Ledger = dict[str, object]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[tuple[str, int]], list[tuple[int, int, int]]]:
    accounts = draw(ACCOUNTS)
    index = st.integers(0, len(accounts) - 1)
    legs = draw(st.lists(st.tuples(index, index, st.integers(1, 700)), min_size=1, max_size=25))
    return accounts, legs


async def world(accounts: list[tuple[str, int]]) -> tuple[InMemoryStore, FakeClock, list[UUID]]:
    store, clock, ids = InMemoryStore(), FakeClock(), []
    for n, (currency, opening) in enumerate(accounts):
        async with store() as uow:
            account = await create_account(CreateAccount(tenant_id=TENANT, user_id=f"u{n}", currency=currency,
                                                         initial_balance=Money(opening, currency) if opening else None),
                                           uow=uow, clock=clock)
        ids.append(account.id)
    return store, clock, ids


def transfers(ids: list[UUID], accounts: list[tuple[str, int]], legs: list[tuple[int, int, int]]
              ) -> list[MakeTransfer]:
    """Each leg in the source's currency: a destination in another currency is a currency mismatch."""
    return [MakeTransfer(tenant_id=TENANT, source_account_id=ids[s], destination_account_id=ids[d],
                         amount=Money(amount, accounts[s][0])) for s, d, amount in legs]


async def ledger(store: InMemoryStore, ids: list[UUID]) -> Ledger:
    """The user accounts' balances and versions and their entries (amount, balance after) in order, by position."""
    assert await InMemoryLedgerAudit(store).drift() == []
    return {"accounts": [(store.accounts[a].balance, store.accounts[a].version) for a in ids],
            "entries": [[(e.amount, e.balance_after) for e in sorted(store.entries, key=lambda e: e.seq)
                         if e.account_id == a] for a in ids]}


async def as_singles(accounts, legs) -> tuple[Ledger, list[str | None]]:
    store, clock, ids = await world(accounts)
    refused: list[str | None] = []
    for cmd in transfers(ids, accounts, legs):
        try:
            async with store(lock_accounts=cmd.locked_accounts) as uow:
                await make_transfer(cmd, uow=uow, clock=clock)
            refused.append(None)
        except CoreError as error:
            refused.append(error.code)
    return await ledger(store, ids), refused


async def as_batch(accounts, legs, *, atomic: bool) -> tuple[Ledger, list[str | None] | None]:
    store, clock, ids = await world(accounts)
    cmd = PostBatch(tenant_id=TENANT, atomic=atomic,
                    transfers=tuple(BatchTransfer(transfer=t) for t in transfers(ids, accounts, legs)))
    try:
        async with store(lock_accounts=cmd.locked_accounts) as uow:
            result = await post_batch(cmd, uow=uow, clock=clock, view=view)
    except BatchFailed:
        return await ledger(store, ids), None
    return await ledger(store, ids), [r.error.code if r.error else None for r in result.results]


async def compare(accounts: list[tuple[str, int]], legs: list[tuple[int, int, int]]) -> None:
    singles, refused = await as_singles(accounts, legs)
    atomic, atomic_refused = await as_batch(accounts, legs, atomic=True)
    non_atomic, non_atomic_refused = await as_batch(accounts, legs, atomic=False)

    assert non_atomic == singles
    assert non_atomic_refused == refused
    if all(code is None for code in refused):
        assert atomic == singles and atomic_refused == refused
    else:  # all or nothing: the ledger as it was opened
        assert atomic_refused is None
        opened, _ = await as_singles(accounts, [])
        assert atomic == opened


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_batched_and_single_postings_leave_the_same_ledger(
    scenario: tuple[list[tuple[str, int]], list[tuple[int, int, int]]]
) -> None:
    asyncio.run(compare(*scenario))


async def as_grouped(accounts, legs, *, transactions: int, group_size: int) -> tuple[Ledger, list[str | None]]:
    """The same transfers sent at once through the group commit (`PostingEngine`), each under its own key."""
    store, clock, ids = await world(accounts)
    engine = PostingEngine(uow_factory=store, clock=clock, ttl=timedelta(hours=1), transactions=transactions,
                           group_size=group_size, queue_timeout=60.0, stall=0.0)

    def render_error(error: CoreError) -> StoredResponse:
        return StoredResponse(status=422, body=error.code.encode())

    async def send(n: int, cmd: MakeTransfer) -> StoredResponse:
        return await engine.run(lambda uow: make_transfer(cmd, uow=uow, clock=clock),
                                request=IdempotentRequest(tenant_id=TENANT, key=f"k{n}", fingerprint=b"f"),
                                render=lambda _: StoredResponse(status=201, body=b""), render_error=render_error,
                                lock_accounts=cmd.locked_accounts)

    answers = await asyncio.gather(*(send(n, cmd) for n, cmd in enumerate(transfers(ids, accounts, legs))))
    return await ledger(store, ids), [answer.body.decode() if answer.status == 422 else None for answer in answers]


@settings(max_examples=100, deadline=None)
@given(scenarios(), st.integers(1, 3), st.integers(1, 6))
def test_grouped_and_single_postings_leave_the_same_ledger(
    scenario: tuple[list[tuple[str, int]], list[tuple[int, int, int]]], transactions: int, group_size: int
) -> None:
    """Transfers arriving together and grouped into shared transactions (any number running at once, any size)
    book as if posted one by one in the order they came: per account, requests start in their order."""
    singles, refused = asyncio.run(as_singles(*scenario))
    grouped, grouped_refused = asyncio.run(as_grouped(*scenario, transactions=transactions, group_size=group_size))
    assert grouped == singles
    assert grouped_refused == refused

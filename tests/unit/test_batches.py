"""post_batch and dry_run_batch on the in-memory store (API.md §10): atomic all-or-nothing, order dependence,
non-atomic mixed results, dry runs that write nothing and consume no id, and the limits."""

from __future__ import annotations

import copy
from typing import Any
from uuid import UUID, uuid4

import pytest

from adapters.memory import InMemoryLedgerAudit, InMemoryStore
from app.http.routes.batches import view
from core import ids
from core.batches import BatchStatus
from core.errors import BatchFailed, CurrencyMismatch, InsufficientFunds, NotFound, SameAccount, ValidationFailed
from core.money import Money
from core.usecases.batches import BatchTransfer, PostBatch, dry_run_batch, get_batch, post_batch
from core.usecases.transfers import MakeTransfer
from tests.unit.conftest import FakeClock
from tests.unit.test_usecases import open_account

Leg = tuple[UUID, UUID, int] | tuple[UUID, UUID, int, str]


def batch(tenant_id: UUID, legs: list[Leg], *, atomic: bool = True, references: list[str | None] | None = None
          ) -> PostBatch:
    transfers = []
    for index, leg in enumerate(legs):
        source, destination, amount, *currency = leg
        money = Money(amount, currency[0] if currency else "USD")
        transfer = MakeTransfer(tenant_id=tenant_id, source_account_id=source, destination_account_id=destination,
                                amount=money, correlation_id="req-b")
        transfers.append(BatchTransfer(transfer=transfer, reference=references[index] if references else None))
    return PostBatch(tenant_id=tenant_id, transfers=tuple(transfers), atomic=atomic, correlation_id="req-b")


async def run(store: InMemoryStore, clock: FakeClock, cmd: PostBatch):
    async with store(lock_accounts=cmd.locked_accounts) as uow:
        return await post_batch(cmd, uow=uow, clock=clock, view=view)


def snapshot(store: InMemoryStore) -> dict[str, Any]:
    """Everything a batch could write."""
    return copy.deepcopy({"accounts": store.accounts, "entries": store.entries, "payments": store.payments,
                          "events": dict(store.events), "outbox": store.outbox, "batches": store.batches,
                          "idempotency": store.idempotency})


def balances(store: InMemoryStore, *accounts: UUID) -> list[int]:
    return [store.accounts[a].balance for a in accounts]


@pytest.fixture
async def abc(store, clock, tenant_id) -> tuple[UUID, UUID, UUID]:
    a = await open_account(store, clock, tenant_id, balance=10_000, user_id="a")
    b = await open_account(store, clock, tenant_id, balance=0, user_id="b")
    c = await open_account(store, clock, tenant_id, balance=500, user_id="c")
    return a.id, b.id, c.id


async def test_an_atomic_batch_makes_every_transfer_as_a_normal_transfer(
    store: InMemoryStore, clock: FakeClock, audit: InMemoryLedgerAudit, tenant_id: UUID, abc
) -> None:
    a, b, c = abc
    result = await run(store, clock, batch(tenant_id, [(a, b, 1_000), (a, c, 250), (c, b, 750)],
                                           references=["rent", None, "fee"]))

    assert result.status == BatchStatus.COMPLETED and result.id is not None
    assert balances(store, a, b, c) == [8_750, 1_750, 0]
    payments = [r.payment for r in result.results]
    assert all(p is not None and p.id in store.payments for p in payments)
    for payment in payments:
        assert [e.type for e in store.events[payment.id]] == ["payment.created", "payment.completed"]
        assert sorted(e.amount for e in store.entries if e.payment_id == payment.id) == [-payment.amount,
                                                                                        payment.amount]
    transfers = [m for m in store.outbox if m.topic == "transfer.completed"]
    assert [m.aggregate_id for m in transfers] == [p.id for p in payments]
    assert {m.correlation_id for m in transfers} == {"req-b"}
    assert await audit.drift() == []
    async with store() as uow:
        stored = await get_batch(tenant_id, result.id, uow=uow)
        with pytest.raises(NotFound):
            await get_batch(uuid4(), result.id, uow=uow)
    answer = view(result)
    assert stored.view == answer and stored.transfers == 3
    assert [(r["index"], r["reference"], r["status"], r["payment"]["id"]) for r in answer["results"]] == [
        (0, "rent", 201, str(payments[0].id)), (1, None, 201, str(payments[1].id)),
        (2, "fee", 201, str(payments[2].id))]
    assert "balances" not in answer and answer["atomic"] is True and answer["dry_run"] is False


async def test_a_failing_atomic_batch_names_each_failing_transfer_and_writes_nothing(
    store: InMemoryStore, clock: FakeClock, tenant_id: UUID, abc
) -> None:
    a, b, c = abc
    other = await open_account(store, clock, uuid4(), balance=100, user_id="o")
    jpy = await open_account(store, clock, tenant_id, balance=100, currency="JPY", user_id="j")
    before = snapshot(store)
    legs: list[Leg] = [(a, b, 100), (b, c, 5_000), (a, a, 1), (a, other.id, 1), (a, jpy.id, 1), (c, b, 500)]

    with pytest.raises(BatchFailed) as failed:
        await run(store, clock, batch(tenant_id, legs))

    assert [(f.index, type(f.error)) for f in failed.value.failures] == [
        (1, InsufficientFunds), (2, SameAccount), (3, NotFound), (4, CurrencyMismatch)]
    assert snapshot(store) == before


async def test_a_later_transfer_may_spend_what_an_earlier_one_credited(
    store: InMemoryStore, clock: FakeClock, audit: InMemoryLedgerAudit, tenant_id: UUID, abc
) -> None:
    a, b, c = abc  # b holds nothing
    with pytest.raises(BatchFailed) as failed:  # spending first: b has nothing yet
        await run(store, clock, batch(tenant_id, [(b, c, 600), (a, b, 1_000)]))
    assert [f.index for f in failed.value.failures] == [0]

    result = await run(store, clock, batch(tenant_id, [(a, b, 1_000), (b, c, 600), (b, a, 400)]))
    assert result.status == BatchStatus.COMPLETED
    assert balances(store, a, b, c) == [9_400, 0, 1_100]
    b_entries = sorted((e for e in store.entries if e.account_id == b), key=lambda e: e.seq)
    assert [(e.amount, e.balance_after) for e in b_entries] == [(1_000, 1_000), (-600, 400), (-400, 0)]
    assert await audit.drift() == []


async def test_a_non_atomic_batch_makes_each_transfer_that_can_be_made(
    store: InMemoryStore, clock: FakeClock, audit: InMemoryLedgerAudit, tenant_id: UUID, abc
) -> None:
    a, b, c = abc
    legs: list[Leg] = [(b, c, 100), (a, b, 300), (b, c, 200), (a, uuid4(), 5), (b, c, 200)]
    result = await run(store, clock, batch(tenant_id, legs, atomic=False))

    assert result.status == BatchStatus.PARTIALLY_COMPLETED
    assert [(r.index, type(r.error).__name__ if r.error else None) for r in result.results] == [
        (0, "InsufficientFunds"), (1, None), (2, None), (3, "NotFound"), (4, "InsufficientFunds")]
    assert balances(store, a, b, c) == [9_700, 100, 700]
    assert len(store.payments) == 2 and len([e for e in store.entries if e.payment_id]) == 4
    answer = view(result)
    assert [(r["status"], r.get("error", {}).get("type")) for r in answer["results"]] == [
        (422, "/problems/insufficient_funds"), (201, None), (201, None), (404, "/problems/not_found"),
        (422, "/problems/insufficient_funds")]
    assert answer["results"][0]["error"]["title"] == "Insufficient funds"
    assert await audit.drift() == []
    async with store() as uow:
        assert (await get_batch(tenant_id, result.id, uow=uow)).view == answer


async def test_a_non_atomic_batch_where_everything_fails_is_stored_failed(
    store: InMemoryStore, clock: FakeClock, tenant_id: UUID, abc
) -> None:
    a, b, _ = abc
    result = await run(store, clock, batch(tenant_id, [(b, a, 1), (a, a, 1)], atomic=False))
    assert result.status == BatchStatus.FAILED
    assert store.payments == {} and list(store.batches) == [result.id]


async def test_a_dry_run_computes_the_real_run_writes_nothing_and_consumes_no_id(
    store: InMemoryStore, clock: FakeClock, tenant_id: UUID, abc
) -> None:
    a, b, c = abc
    cmd = batch(tenant_id, [(a, b, 1_000), (b, c, 600)])
    before, source = snapshot(store), (ids.new_id._last_ms, ids.new_id._counter)

    dry = await dry_run_batch(cmd, uow_factory=store, clock=clock, view=view)

    assert (ids.new_id._last_ms, ids.new_id._counter) == source  # the UUIDv7 source did not move
    assert snapshot(store) == before
    assert dry.id is None and dry.dry_run and dry.status == BatchStatus.COMPLETED
    answer = view(dry)
    assert answer["id"] is None
    assert answer["balances"] == [
        {"account_id": str(a), "balance_before": "100.00", "balance_after": "90.00"},
        {"account_id": str(b), "balance_before": "0.00", "balance_after": "4.00"},
        {"account_id": str(c), "balance_before": "5.00", "balance_after": "11.00"}]
    real = await run(store, clock, cmd)
    real_answer = view(real)
    for dry_leg, real_leg in zip(answer["results"], real_answer["results"], strict=True):
        assert "id" not in dry_leg["payment"]
        assert dry_leg["payment"] == {k: v for k, v in real_leg["payment"].items() if k != "id"}
        assert dry_leg["status"] == real_leg["status"] == 201
    assert balances(store, a, b, c) == [9_000, 400, 1_100]


async def test_a_failing_atomic_dry_run_fails_exactly_as_the_real_run(
    store: InMemoryStore, clock: FakeClock, tenant_id: UUID, abc
) -> None:
    a, b, c = abc
    cmd = batch(tenant_id, [(b, c, 1), (a, b, 10), (a, uuid4(), 1)])
    before = snapshot(store)
    with pytest.raises(BatchFailed) as dry:
        await dry_run_batch(cmd, uow_factory=store, clock=clock, view=view)
    with pytest.raises(BatchFailed) as real:
        await run(store, clock, cmd)
    assert str(dry.value) == str(real.value)
    assert [(f.index, f.error.code, f.error.detail) for f in dry.value.failures] == [
        (f.index, f.error.code, f.error.detail) for f in real.value.failures] == [
        (0, "insufficient_funds", f"account {b} has insufficient funds"),
        (2, "not_found", f"account {cmd.transfers[2].transfer.destination_account_id} not found")]
    assert snapshot(store) == before


async def test_a_non_atomic_dry_run_shows_each_result_as_the_real_run_would(
    store: InMemoryStore, clock: FakeClock, tenant_id: UUID, abc
) -> None:
    a, b, c = abc
    cmd = batch(tenant_id, [(b, c, 1), (a, b, 10)], atomic=False)
    dry = view(await dry_run_batch(cmd, uow_factory=store, clock=clock, view=view))
    real = view(await run(store, clock, cmd))
    assert [r["status"] for r in dry["results"]] == [r["status"] for r in real["results"]] == [422, 201]
    assert dry["results"][0]["error"] == real["results"][0]["error"]
    assert dry["status"] == real["status"] == "partially_completed"


@pytest.mark.parametrize(("count", "references", "field"), [
    (0, None, "transfers"),
    (1_001, None, "transfers"),
    (2, [None, "x" * 65], "transfers[1].reference"),
])
def test_the_limits_of_a_batch(tenant_id: UUID, count: int, references: list[str | None] | None,
                               field: str) -> None:
    legs: list[Leg] = [(uuid4(), uuid4(), 1)] * count
    with pytest.raises(ValidationFailed) as refused:
        batch(tenant_id, legs, references=references)
    assert [e.field for e in refused.value.errors] == [field]


def test_the_largest_batch_and_reference_are_accepted(tenant_id: UUID) -> None:
    legs: list[Leg] = [(uuid4(), uuid4(), 1)] * 1_000
    cmd = batch(tenant_id, legs, references=["r" * 64] * 1_000)
    assert len(cmd.transfers) == 1_000 and len(cmd.locked_accounts) == 2


@pytest.mark.parametrize(("transfers", "errors"), [
    ("abc", [("transfers", "must be a list")]),
    ({"0": {}}, [("transfers", "must be a list")]),
    ([1], [("transfers[0]", "has the wrong type")]),
    ([{"source_account_id": "a", "destination_account_id": "b", "amount": "1", "currency": "USD"},
      {"source_account_id": "a", "destination_account_id": "b", "amount": [1], "currency": "USD", "x": 1}],
     [("transfers[1].amount", 'must be a decimal number or a decimal string such as "10.50"'),
      ("transfers[1].x", "is not a known field")]),
])
def test_a_malformed_batch_body_names_each_bad_field_by_index(transfers: object, errors: list[tuple[str, str]]) -> None:
    from app.http.bodies import parse_body
    from app.http.schemas.batches import BatchRequest

    with pytest.raises(ValidationFailed) as refused:
        parse_body({"transfers": transfers}, BatchRequest)
    assert [(e.field, e.message) for e in refused.value.errors] == errors

"""UnitOfWork: leaving it normally commits every buffered write at once; an exception leaves no trace."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta
from uuid import uuid4

import attrs
import pytest

from core.accounts import FUNDING
from core.errors import IdempotencyRequestInProgress
from core.idempotency import IdempotencyRecord, IdempotentRequest, StoredResponse
from core.ids import new_id
from core.money import Money
from core.payments import PaymentStatus
from core.tenants import ApiKey, hash_key
from core.usecases.accounts import CreateAccount, create_account
from core.usecases.transfers import MakeTransfer, make_transfer
from tests.contract.conftest import balance, open_account

pytestmark = pytest.mark.timeout(30)


async def write_everything(uow, clock, tenant, a, b):
    """One of each write: an account funded from a new system account, a transfer, a key record, an API key."""
    created = await create_account(CreateAccount(tenant_id=tenant.id, user_id="carol", currency="JPY",
                                                 initial_balance=Money(700, "JPY")), uow=uow, clock=clock)
    payment = await make_transfer(MakeTransfer(tenant_id=tenant.id, source_account_id=a.id,
                                               destination_account_id=b.id, amount=Money(250, "USD")),
                                  uow=uow, clock=clock)
    funding = await uow.accounts.lock_system(tenant.id, FUNDING, "JPY")
    now = clock.now()
    request = IdempotentRequest(tenant_id=tenant.id, key=f"k-{secrets.token_hex(4)}", fingerprint=b"\x00fp\xff")
    assert await uow.idempotency.claim(request, now) is None
    uow.idempotency.add(IdempotencyRecord(request=request, response=StoredResponse(status=201, body=b"\x00{}\xff"),
                                          created_at=now, expires_at=now + timedelta(hours=1)))
    plain = f"pk_{secrets.token_hex(16)}"
    key = ApiKey(id=new_id(), tenant_id=tenant.id, key_hash=hash_key(plain), prefix=plain[:10],
                 scopes=("read", "write"), created_at=now)
    uow.tenants.add_key(key)
    return created, payment, funding, request, key


async def test_commit_makes_every_write_visible(uow_factory, clock, tenant, probe) -> None:
    a = await open_account(uow_factory, clock, tenant.id, 1_000)
    b = await open_account(uow_factory, clock, tenant.id, user_id="bob")
    async with uow_factory() as uow:
        created, payment, funding, request, key = await write_everything(uow, clock, tenant, a, b)
    # commit leaves the objects it was handed as they were
    assert (created.balance, payment.status, [e.type for e in payment.events]) == (
        700, PaymentStatus.COMPLETED, ["payment.created", "payment.completed"])

    async with uow_factory() as uow:
        assert (await uow.accounts.get(tenant.id, created.id)).balance == 700
        assert (await uow.accounts.get(tenant.id, funding.id)).balance == -700
        assert (await uow.accounts.get(tenant.id, a.id)).balance == 750
        assert (await uow.accounts.get(tenant.id, b.id)).balance == 250
        assert [e.amount for e in (await uow.ledger.list(tenant.id, created.id, limit=10, cursor=None)).items] == [700]
        assert [e.amount for e in (await uow.ledger.list(tenant.id, b.id, limit=10, cursor=None)).items] == [250]
        stored = await uow.payments.get(tenant.id, payment.id)
        assert (stored.status, stored.amount, stored.version) == (PaymentStatus.COMPLETED, 250, 1)
        assert [e.type for e in await uow.payments.events(tenant.id, payment.id)] == [
            "payment.created", "payment.completed"]
        record = await uow.idempotency.claim(request, clock.now())
        assert record is not None
        assert (record.request.fingerprint, record.response.status, record.response.body) == (
            b"\x00fp\xff", 201, b"\x00{}\xff")
        assert await uow.tenants.key_by_hash(key.key_hash) == key
    topics = await probe.outbox(tenant.id)
    assert ("account.created", created.id) in topics
    assert ("transfer.completed", payment.id) in topics


async def assert_nothing_written(uow_factory, clock, tenant, probe, a, b, written) -> None:
    created, payment, funding, request, key = written
    async with uow_factory() as uow:
        assert await uow.accounts.get(tenant.id, created.id) is None
        assert await uow.accounts.get(tenant.id, funding.id) is None  # the system account made inside, too
        assert (await uow.accounts.get(tenant.id, a.id)).balance == 1_000
        assert (await uow.accounts.get(tenant.id, b.id)).balance == 0
        assert [e.amount for e in (await uow.ledger.list(tenant.id, a.id, limit=10, cursor=None)).items] == [1_000]
        assert (await uow.ledger.list(tenant.id, created.id, limit=10, cursor=None)).items == []
        assert await uow.payments.get(tenant.id, payment.id) is None
        assert await uow.payments.events(tenant.id, payment.id) == []
        assert await uow.idempotency.claim(request, clock.now()) is None
        assert await uow.tenants.key_by_hash(key.key_hash) is None
        assert await uow.accounts.lock_system(tenant.id, FUNDING, "JPY") != funding
    assert [topic for topic, _ in await probe.outbox(tenant.id)] == ["account.created", "account.created"]


async def test_a_failed_commit_rolls_everything_back(uow_factory, clock, tenant, probe, audit) -> None:
    a = await open_account(uow_factory, clock, tenant.id, 1_000)
    b = await open_account(uow_factory, clock, tenant.id, user_id="bob")
    now = clock.now()
    taken = IdempotentRequest(tenant_id=tenant.id, key=f"k-{secrets.token_hex(4)}", fingerprint=b"fp")
    stored = IdempotencyRecord(request=taken, response=StoredResponse(status=201, body=b"{}"),
                               created_at=now, expires_at=now + timedelta(hours=1))
    async with uow_factory() as uow:
        uow.idempotency.add(stored)
    written = None
    with pytest.raises(IdempotencyRequestInProgress):  # the commit refuses a second record for a live key
        async with uow_factory() as uow:
            written = await write_everything(uow, clock, tenant, a, b)
            uow.idempotency.add(attrs.evolve(stored, created_at=clock.now()))
    await assert_nothing_written(uow_factory, clock, tenant, probe, a, b, written)
    assert await audit.drift() == []


async def test_an_exception_rolls_everything_back(uow_factory, clock, tenant, probe, audit) -> None:
    a = await open_account(uow_factory, clock, tenant.id, 1_000)
    b = await open_account(uow_factory, clock, tenant.id, user_id="bob")
    written = None
    with pytest.raises(LookupError):
        async with uow_factory() as uow:
            written = await write_everything(uow, clock, tenant, a, b)
            raise LookupError("boom")
    await assert_nothing_written(uow_factory, clock, tenant, probe, a, b, written)
    assert await audit.drift() == []


async def test_writes_are_buffered_until_commit(uow_factory, clock, tenant) -> None:
    async with uow_factory() as uow:
        account = await create_account(CreateAccount(tenant_id=tenant.id, user_id="dave", currency="USD"),
                                       uow=uow, clock=clock)
        assert await uow.accounts.get(tenant.id, account.id) is None
        assert await uow.accounts.lock(tenant.id, [account.id]) == {}
        async with uow_factory() as other:
            assert await other.accounts.get(tenant.id, account.id) is None
    async with uow_factory() as uow:
        assert (await uow.accounts.get(tenant.id, account.id)).user_id == "dave"


async def test_two_postings_on_one_account_in_one_unit_of_work(
    request, backend, uow_factory, clock, tenant, audit
) -> None:
    """The second posting must see the first: a re-locked account carries the unit of work's own changes."""

    async def two_accounts() -> tuple:
        async with uow_factory() as uow:
            first = await create_account(CreateAccount(tenant_id=tenant.id, user_id="u1", currency="USD",
                                                       initial_balance=Money(100, "USD")), uow=uow, clock=clock)
            second = await create_account(CreateAccount(tenant_id=tenant.id, user_id="u2", currency="USD",
                                                        initial_balance=Money(50, "USD")), uow=uow, clock=clock)
            funding = await uow.accounts.lock_system(tenant.id, FUNDING, "USD")
            assert (funding.balance, funding.version) == (-150, 2)
        return first, second, funding

    first, second, funding = await asyncio.wait_for(two_accounts(), 5)
    assert await balance(uow_factory, tenant.id, funding.id) == -150
    assert await balance(uow_factory, tenant.id, first.id) == 100
    assert await balance(uow_factory, tenant.id, second.id) == 50
    assert await audit.drift() == []


async def test_commit_ends_the_transaction_and_releases_its_locks(uow_factory, clock, tenant) -> None:
    a = await open_account(uow_factory, clock, tenant.id, 300)
    request = IdempotentRequest(tenant_id=tenant.id, key=f"k-{secrets.token_hex(4)}", fingerprint=b"fp")
    async with uow_factory() as first:
        await first.accounts.lock(tenant.id, [a.id])
        await first.idempotency.claim(request, clock.now())

    async def second() -> None:
        async with uow_factory() as uow:
            assert list(await uow.accounts.lock(tenant.id, [a.id])) == [a.id]
            assert await uow.idempotency.claim(request, clock.now()) is None

    await asyncio.wait_for(second(), 5)


async def test_other_tenants_rows_are_untouched_by_a_rollback(uow_factory, clock, tenant) -> None:
    a = await open_account(uow_factory, clock, tenant.id, 300)
    async with uow_factory() as uow:
        assert await uow.accounts.lock(tenant.id, [a.id, uuid4()]) != {}
    assert await balance(uow_factory, tenant.id, a.id) == 300

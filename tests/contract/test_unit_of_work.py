"""UnitOfWork: leaving it normally commits every buffered write at once; an exception leaves no trace."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from datetime import timedelta
from uuid import uuid4

import attrs
import pytest

from adapters.memory import InMemoryStore
from app.bootstrap import bootstrap
from core.accounts import FUNDING
from core.errors import IdempotencyRequestInProgress, Unavailable
from core.idempotency import IdempotencyRecord, IdempotentRequest, StoredResponse
from core.ids import new_id
from core.money import Money
from core.payments import PaymentStatus
from core.tenants import ApiKey, hash_key
from core.usecases.accounts import CreateAccount, create_account
from core.usecases.transfers import MakeTransfer, make_transfer
from tests.contract.conftest import balance, new_tenant, open_account

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
    plain = f"sk_{secrets.token_hex(16)}"
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


@pytest.fixture
async def bounded(backend, services, database_url, redis_url):
    """A factory whose units of work wait at most 0.3 s for their turn and connection; on PostgreSQL its pool
    has three connections: as many as two turns on one account take, plus one."""
    if backend == "memory":
        yield InMemoryStore(wait_timeout=0.3)
        return
    database = attrs.evolve(services.settings.database, acquire_timeout=0.3, pool_max=3)
    built = await bootstrap(attrs.evolve(services.settings, database=database), database_url, redis_url)
    try:
        yield built.uow_factory
    finally:
        await built.aclose()


async def test_waiting_for_a_hot_accounts_turn_is_bounded_and_starves_no_one(bounded, clock) -> None:
    """Units of work declaring one account queue for it before they take anything shared: the next one in
    line gives up with `Unavailable` after the bound, and meanwhile work on other accounts goes on (on
    PostgreSQL it gets the connection that the waiter did not take)."""
    tenant = await new_tenant(bounded, clock)
    hot = await open_account(bounded, clock, tenant.id, 1_000, user_id="hot")
    c = await open_account(bounded, clock, tenant.id, 500, user_id="c")
    d = await open_account(bounded, clock, tenant.id, user_id="d")
    holders = 0
    async with contextlib.AsyncExitStack() as stack:
        with pytest.raises(Unavailable):
            while holders < 10:
                uow = await stack.enter_async_context(bounded(lock_accounts=[hot.id]))
                if holders == 0:  # the first one works on the account, the others wait for it
                    await uow.accounts.lock(tenant.id, [hot.id])
                holders += 1
        cold = MakeTransfer(tenant_id=tenant.id, source_account_id=c.id, destination_account_id=d.id,
                            amount=Money(200, "USD"))
        async with bounded(lock_accounts=cold.locked_accounts) as uow:
            await make_transfer(cold, uow=uow, clock=clock)
        assert 1 <= holders < 10
    assert (await balance(bounded, tenant.id, c.id), await balance(bounded, tenant.id, d.id)) == (300, 200)
    for _ in range(holders + 1):  # every turn was given back, the one that gave up included
        async with bounded(lock_accounts=[hot.id]) as uow:
            assert list(await uow.accounts.lock(tenant.id, [hot.id])) == [hot.id]


async def test_declaring_the_accounts_changes_no_outcome(uow_factory, clock, tenant, audit) -> None:
    a = await open_account(uow_factory, clock, tenant.id, 1_000)
    b = await open_account(uow_factory, clock, tenant.id, user_id="bob")
    cmd = MakeTransfer(tenant_id=tenant.id, source_account_id=a.id, destination_account_id=b.id,
                       amount=Money(250, "USD"))
    async with uow_factory(lock_accounts=cmd.locked_accounts) as uow:
        await make_transfer(cmd, uow=uow, clock=clock)
    with pytest.raises(LookupError):
        async with uow_factory(lock_accounts=[a.id]) as uow:
            assert set(await uow.accounts.lock(tenant.id, [a.id, b.id])) == {a.id, b.id}  # b was not declared
            raise LookupError("boom")

    async def one_after_another() -> None:  # the failed one gave its turn back
        for _ in range(3):
            async with uow_factory(lock_accounts=[b.id, a.id]) as uow:
                await uow.accounts.lock(tenant.id, [a.id, b.id])

    await asyncio.wait_for(one_after_another(), 5)
    assert (await balance(uow_factory, tenant.id, a.id), await balance(uow_factory, tenant.id, b.id)) == (750, 250)
    assert await audit.drift() == []

"""IdempotencyKeys: one unit of work per (tenant, key) at a time; one live record per key."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta

import pytest

from core.accounts import USER, Account
from core.errors import IdempotencyRequestInProgress
from core.idempotency import IdempotencyRecord, IdempotentRequest, StoredResponse
from core.ids import new_id
from tests.contract.conftest import new_tenant

pytestmark = pytest.mark.timeout(30)


def make_request(tenant_id, key=None, fingerprint=b"POST /api/v1/transfers \x00\xff") -> IdempotentRequest:
    return IdempotentRequest(tenant_id=tenant_id, key=key or f"key-{secrets.token_hex(6)}", fingerprint=fingerprint)


def make_record(request, now, *, status=201, body=b'{"id": 1}\n\x00\xff', ttl=timedelta(hours=24)):
    return IdempotencyRecord(request=request, response=StoredResponse(status=status, body=body),
                             created_at=now, expires_at=now + ttl)


async def test_claim_of_an_unknown_key_returns_nothing(uow_factory, clock, tenant) -> None:
    async with uow_factory() as uow:
        assert await uow.idempotency.claim(make_request(tenant.id), clock.now()) is None


async def test_a_second_claim_waits_for_the_first_unit_of_work_to_end(uow_factory, clock, tenant) -> None:
    request = make_request(tenant.id)
    now = clock.now()
    async with uow_factory() as first:
        assert await first.idempotency.claim(request, now) is None
        async with uow_factory() as second:
            with pytest.raises(IdempotencyRequestInProgress):
                await second.idempotency.claim(request, now)
        first.idempotency.add(make_record(request, now, status=422, body=b"\x00problem\xff"))

    async with uow_factory() as third:
        record = await third.idempotency.claim(request, clock.now())
    assert record is not None
    assert record.request == request
    assert record.response == StoredResponse(status=422, body=b"\x00problem\xff")
    assert (record.created_at, record.expires_at) == (now, now + timedelta(hours=24))


async def test_a_concurrent_claim_in_another_task_is_in_progress(uow_factory, clock, tenant) -> None:
    request = make_request(tenant.id)
    claimed, release = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with uow_factory() as uow:
            await uow.idempotency.claim(request, clock.now())
            claimed.set()
            await release.wait()

    task = asyncio.create_task(holder())
    await claimed.wait()
    async with uow_factory() as uow:
        with pytest.raises(IdempotencyRequestInProgress):
            await uow.idempotency.claim(request, clock.now())
    release.set()
    await asyncio.wait_for(task, 10)
    async with uow_factory() as uow:  # ended: free again, with nothing stored
        assert await uow.idempotency.claim(request, clock.now()) is None


async def test_claiming_again_in_the_same_unit_of_work_is_allowed(uow_factory, clock, tenant) -> None:
    request = make_request(tenant.id)
    async with uow_factory() as uow:
        assert await uow.idempotency.claim(request, clock.now()) is None
        assert await uow.idempotency.claim(request, clock.now()) is None


async def test_keys_are_scoped_by_tenant(uow_factory, clock, tenant) -> None:
    other = await new_tenant(uow_factory, clock)
    mine, theirs = make_request(tenant.id, "same-key"), make_request(other.id, "same-key", b"other")
    now = clock.now()
    async with uow_factory() as first:
        assert await first.idempotency.claim(mine, now) is None
        async with uow_factory() as second:
            assert await second.idempotency.claim(theirs, now) is None
            second.idempotency.add(make_record(theirs, now, body=b"theirs"))
        first.idempotency.add(make_record(mine, now, body=b"mine"))
    async with uow_factory() as uow:
        assert (await uow.idempotency.claim(mine, now)).response.body == b"mine"
        assert (await uow.idempotency.claim(theirs, now)).response.body == b"theirs"


async def test_committing_a_second_record_for_a_live_key_fails_and_writes_nothing(uow_factory, clock, tenant) -> None:
    request = make_request(tenant.id)
    now = clock.now()
    async with uow_factory() as uow:
        uow.idempotency.add(make_record(request, now, body=b"first"))

    account = Account(id=new_id(), tenant_id=tenant.id, kind=USER, currency="USD", user_id="late",
                      created_at=now, updated_at=now)
    with pytest.raises(IdempotencyRequestInProgress):  # raised by the commit as the block ends
        async with uow_factory() as uow:
            uow.accounts.add(account)
            uow.idempotency.add(make_record(request, clock.now(), body=b"second"))

    async with uow_factory() as uow:
        assert (await uow.idempotency.claim(request, clock.now())).response.body == b"first"
        assert await uow.accounts.get(tenant.id, account.id) is None


async def test_an_expired_record_is_not_returned_and_can_be_replaced(uow_factory, clock, tenant) -> None:
    request = make_request(tenant.id)
    then = clock.now() - timedelta(hours=2)
    async with uow_factory() as uow:
        uow.idempotency.add(make_record(request, then, body=b"old", ttl=timedelta(hours=1)))

    async with uow_factory() as uow:
        assert (await uow.idempotency.claim(request, then + timedelta(minutes=59))).response.body == b"old"
    async with uow_factory() as uow:
        assert await uow.idempotency.claim(request, clock.now()) is None
    async with uow_factory() as uow:  # a claim that saw the record expired removed it
        assert await uow.idempotency.claim(request, then + timedelta(minutes=59)) is None
    async with uow_factory() as uow:
        now = clock.now()
        uow.idempotency.add(make_record(request, now, body=b"new"))
    async with uow_factory() as uow:
        assert (await uow.idempotency.claim(request, clock.now())).response.body == b"new"


async def test_claim_all_answers_each_key_in_order_and_reports_a_busy_one_in_its_place(uow_factory, clock,
                                                                                        tenant) -> None:
    now = clock.now()
    stored, expired, busy, fresh = (make_request(tenant.id) for _ in range(4))
    async with uow_factory() as uow:
        uow.idempotency.add(make_record(stored, now, status=422, body=b"\x00refused\xff"))
        uow.idempotency.add(make_record(expired, now - timedelta(hours=2), ttl=timedelta(hours=1)))
    claimed, release = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with uow_factory() as uow:
            await uow.idempotency.claim(busy, clock.now())
            claimed.set()
            await release.wait()

    held = asyncio.create_task(holder())
    await claimed.wait()
    try:
        async with uow_factory() as uow:
            claims = await uow.idempotency.claim_all([fresh, stored, busy, expired], now)
            assert claims[0] is None and claims[3] is None
            assert isinstance(claims[1], IdempotencyRecord)
            assert claims[1].response == StoredResponse(status=422, body=b"\x00refused\xff")
            assert isinstance(claims[2], IdempotencyRequestInProgress)
            uow.idempotency.add(make_record(fresh, now))
            uow.idempotency.add(make_record(expired, now, status=201, body=b"again"))
    finally:
        release.set()
        await held
    async with uow_factory() as uow:  # the claimed keys were held by that unit of work and their records written
        again = await uow.idempotency.claim_all([fresh, expired, busy], clock.now())
    assert [None if claim is None else claim.response.body for claim in again] == [b'{"id": 1}\n\x00\xff',
                                                                                     b"again", None]


async def test_many_records_of_one_unit_of_work_are_all_stored(uow_factory, clock, tenant) -> None:
    """A group commit stores a record per request, dozens at once (PostgreSQL: one array per column)."""
    now = clock.now()
    requests = [make_request(tenant.id) for _ in range(12)]
    async with uow_factory() as uow:
        assert await uow.idempotency.claim_all(requests, now) == [None] * 12
        for n, request in enumerate(requests):
            uow.idempotency.add(make_record(request, now, status=200 + n, body=f"answer {n}\x00".encode()))
    async with uow_factory() as uow:
        claims = await uow.idempotency.claim_all(requests, now)
    assert [(c.response.status, c.response.body) for c in claims if isinstance(c, IdempotencyRecord)] == [
        (200 + n, f"answer {n}\x00".encode()) for n in range(12)]

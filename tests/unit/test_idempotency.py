"""run_idempotent on the in-memory store: store, replay, reuse, in-progress, errors, expiry and retries."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from adapters.memory import InMemoryStore
from core.accounts import Account
from core.errors import (
    ConcurrencyConflict,
    CoreError,
    IdempotencyKeyReused,
    IdempotencyRequestInProgress,
    InsufficientFunds,
)
from core.idempotency import IdempotentRequest, StoredResponse
from core.ports import UnitOfWork
from core.usecases.accounts import CreateAccount, create_account
from core.usecases.idempotency import ATTEMPTS, run_idempotent
from core.views import account_view
from tests.unit.conftest import FakeClock

TTL = timedelta(hours=24)


def render(account: Account) -> StoredResponse:
    return StoredResponse(status=201, body=json.dumps(account_view(account), sort_keys=True).encode())


def render_error(error: CoreError) -> StoredResponse:
    status = 503 if error.code == "service_unavailable" else 422
    return StoredResponse(status=status, body=json.dumps({"type": f"/problems/{error.code}"}).encode())


class Work:
    """Opens an account per call and counts the calls; can fail or wait for a signal first."""

    def __init__(self, clock: FakeClock, tenant_id: UUID) -> None:
        self.clock, self.tenant_id = clock, tenant_id
        self.calls = 0
        self.fail_with: list[CoreError] = []
        self.started = asyncio.Event()
        self.proceed: asyncio.Event | None = None

    async def __call__(self, uow: UnitOfWork) -> Account:
        self.calls += 1
        self.started.set()
        account = await create_account(CreateAccount(tenant_id=self.tenant_id, user_id=f"u{self.calls}",
                                                     currency="USD"), uow=uow, clock=self.clock)
        if self.proceed is not None:
            await self.proceed.wait()
        if self.fail_with:
            raise self.fail_with.pop(0)
        return account


def request(tenant_id: UUID, key: str = "key-1", fingerprint: bytes = b"POST /accounts {}") -> IdempotentRequest:
    return IdempotentRequest(tenant_id=tenant_id, key=key, fingerprint=fingerprint)


async def run(work: Work, store: InMemoryStore, clock: FakeClock, req: IdempotentRequest | None) -> StoredResponse:
    return await run_idempotent(work, request=req, render=render, render_error=render_error,
                                uow_factory=store, clock=clock, ttl=TTL)


def user_accounts(store: InMemoryStore) -> list[Account]:
    return [a for a in store.accounts.values() if a.is_user]


async def test_first_run_commits_the_effect_with_its_response(store, clock, tenant_id) -> None:
    work = Work(clock, tenant_id)
    response = await run(work, store, clock, request(tenant_id))
    [account] = user_accounts(store)
    assert response == StoredResponse(status=201, body=render(account).body, replayed=False)
    record = store.idempotency[(tenant_id, "key-1")]
    assert (record.response.status, record.response.body) == (201, response.body)
    assert record.request.fingerprint == b"POST /accounts {}"
    assert record.expires_at - record.created_at == TTL


async def test_a_replay_returns_the_same_bytes_without_running_again(store, clock, tenant_id) -> None:
    work = Work(clock, tenant_id)
    first = await run(work, store, clock, request(tenant_id))
    clock.advance(timedelta(hours=23))
    second = await run(work, store, clock, request(tenant_id))
    assert (second.status, second.body, second.replayed) == (first.status, first.body, True)
    assert work.calls == 1
    assert len(user_accounts(store)) == 1


async def test_the_same_key_with_a_different_request_is_refused(store, clock, tenant_id) -> None:
    work = Work(clock, tenant_id)
    await run(work, store, clock, request(tenant_id))
    with pytest.raises(IdempotencyKeyReused):
        await run(work, store, clock, request(tenant_id, fingerprint=b"POST /accounts {\"x\":1}"))
    assert work.calls == 1
    assert len(user_accounts(store)) == 1


async def test_keys_are_scoped_by_tenant(store, clock, tenant_id) -> None:
    other = uuid4()
    await run(Work(clock, tenant_id), store, clock, request(tenant_id))
    response = await run(Work(clock, other), store, clock, request(other, fingerprint=b"something else"))
    assert not response.replayed
    assert len(user_accounts(store)) == 2


async def test_a_concurrent_request_with_the_key_is_in_progress(store, clock, tenant_id) -> None:
    first_work = Work(clock, tenant_id)
    first_work.proceed = asyncio.Event()
    first = asyncio.create_task(run(first_work, store, clock, request(tenant_id)))
    await first_work.started.wait()

    second_work = Work(clock, tenant_id)
    with pytest.raises(IdempotencyRequestInProgress):
        await run(second_work, store, clock, request(tenant_id))
    assert second_work.calls == 0

    first_work.proceed.set()
    response = await first
    replay = await run(second_work, store, clock, request(tenant_id))
    assert (replay.body, replay.replayed) == (response.body, True)
    assert second_work.calls == 0
    assert len(user_accounts(store)) == 1


async def test_a_key_claimed_by_an_open_unit_of_work_is_in_progress(store, clock, tenant_id) -> None:
    work = Work(clock, tenant_id)
    async with store() as holder:
        assert await holder.idempotency.claim(request(tenant_id), clock.now()) is None
        with pytest.raises(IdempotencyRequestInProgress):
            await run(work, store, clock, request(tenant_id))
    assert work.calls == 0
    assert (await run(work, store, clock, request(tenant_id))).status == 201


async def test_a_business_error_is_rolled_back_stored_and_replayed(store, clock, tenant_id) -> None:
    work = Work(clock, tenant_id)
    work.fail_with = [InsufficientFunds("no money")]
    response = await run(work, store, clock, request(tenant_id))
    assert (response.status, response.replayed) == (422, False)
    assert json.loads(response.body) == {"type": "/problems/insufficient_funds"}
    assert user_accounts(store) == []  # the effect before the error was rolled back
    assert store.outbox == []
    assert store.idempotency[(tenant_id, "key-1")].response.status == 422

    replay = await run(work, store, clock, request(tenant_id))
    assert (replay.status, replay.body, replay.replayed) == (422, response.body, True)
    assert work.calls == 1
    with pytest.raises(IdempotencyKeyReused):
        await run(work, store, clock, request(tenant_id, fingerprint=b"other"))


async def test_a_5xx_outcome_is_not_stored_and_releases_the_key(store, clock, tenant_id) -> None:
    work = Work(clock, tenant_id)
    work.fail_with = [ConcurrencyConflict("lost")] * ATTEMPTS
    with pytest.raises(ConcurrencyConflict):
        await run(work, store, clock, request(tenant_id))
    assert work.calls == ATTEMPTS
    assert store.idempotency == {}
    assert (await run(work, store, clock, request(tenant_id))).status == 201
    assert work.calls == ATTEMPTS + 1


async def test_a_concurrency_conflict_retries_the_whole_unit_of_work(store, clock, tenant_id) -> None:
    work = Work(clock, tenant_id)
    work.fail_with = [ConcurrencyConflict("lost")] * (ATTEMPTS - 1)
    response = await run(work, store, clock, request(tenant_id))
    assert (response.status, work.calls) == (201, ATTEMPTS)
    [account] = user_accounts(store)  # the failed attempts left nothing behind
    assert response.body == render(account).body


async def test_an_expired_record_is_ignored(store, clock, tenant_id) -> None:
    work = Work(clock, tenant_id)
    first = await run(work, store, clock, request(tenant_id))
    clock.advance(TTL + timedelta(seconds=1))

    second = await run(work, store, clock, request(tenant_id, fingerprint=b"a different request"))
    assert (second.status, second.replayed) == (201, False)
    assert second.body != first.body
    assert work.calls == 2
    record = store.idempotency[(tenant_id, "key-1")]
    assert (record.request.fingerprint, record.response.body) == (b"a different request", second.body)
    third = await run(work, store, clock, request(tenant_id, fingerprint=b"a different request"))
    assert (third.body, third.replayed) == (second.body, True)


async def test_without_a_key_nothing_is_stored(store, clock, tenant_id) -> None:
    work = Work(clock, tenant_id)
    await run(work, store, clock, None)
    await run(work, store, clock, None)
    assert work.calls == 2
    assert store.idempotency == {}
    work.fail_with = [InsufficientFunds("no")]
    assert (await run(work, store, clock, None)).status == 422
    assert store.idempotency == {}

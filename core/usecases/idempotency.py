"""Run a use case at most once per idempotency key, storing its response with its effect (API.md §1)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from datetime import timedelta
from typing import TypeVar
from uuid import UUID

from core.errors import ConcurrencyConflict, CoreError, IdempotencyKeyReused
from core.idempotency import IdempotencyRecord, IdempotentRequest, StoredResponse
from core.ports import Clock, UnitOfWork, UnitOfWorkFactory

T = TypeVar("T")
ATTEMPTS = 5


async def run_idempotent(
    work: Callable[[UnitOfWork], Awaitable[T]],
    *,
    request: IdempotentRequest | None,
    render: Callable[[T], StoredResponse],
    render_error: Callable[[CoreError], StoredResponse],
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ttl: timedelta,
    lock_accounts: Collection[UUID] = (),
) -> StoredResponse:
    """Run `work` in one unit of work and commit its effect together with its response.

    With a key: a live stored response for the same request is replayed, one for a
    different request raises `IdempotencyKeyReused`, and a key held by a running
    request raises `IdempotencyRequestInProgress`. A business error raised by `work`
    rolls the effect back, is rendered by `render_error` and stored for the key in a
    second transaction. A transient error is rendered but never stored; a
    `ConcurrencyConflict` first retries the whole unit of work. `lock_accounts` are the accounts
    `work` locks, declared to the unit of work (see `UnitOfWorkFactory`).
    """
    attempts = 0
    while True:
        refused: CoreError | None = None
        try:
            async with uow_factory(lock_accounts=lock_accounts) as uow:
                if request is not None and (stored := await uow.idempotency.claim(request, clock.now())):
                    return replay(stored, request)
                try:
                    result = await work(uow)
                except CoreError as error:
                    refused = error
                    raise  # out of the unit of work, so its effect rolls back
                response = render(result)
                if request is not None:
                    uow.idempotency.add(record_of(request, response, clock, ttl))
            return response
        except ConcurrencyConflict:
            attempts += 1
            if attempts == ATTEMPTS:
                raise
        except CoreError as error:
            if error is not refused:
                raise
            response = render_error(error)
            if request is None or error.transient:
                return response
            return await _remember_error(request, response, uow_factory=uow_factory, clock=clock, ttl=ttl)


async def _remember_error(
    request: IdempotentRequest,
    response: StoredResponse,
    *,
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ttl: timedelta,
) -> StoredResponse:
    """Store a business error's response for the key, unless a concurrent request already stored one."""
    async with uow_factory() as uow:
        stored = await uow.idempotency.claim(request, clock.now())
        if stored is not None:
            return replay(stored, request)
        uow.idempotency.add(record_of(request, response, clock, ttl))
    return response


def record_of(request: IdempotentRequest, response: StoredResponse, clock: Clock, ttl: timedelta) -> IdempotencyRecord:
    """What is stored for `request`'s key: its response, kept `ttl` from now."""
    now = clock.now()
    return IdempotencyRecord(request=request, response=response, created_at=now, expires_at=now + ttl)


def replay(stored: IdempotencyRecord, request: IdempotentRequest) -> StoredResponse:
    """The stored response, marked replayed; `IdempotencyKeyReused` if it answered a different request."""
    if stored.request.fingerprint != request.fingerprint:
        raise IdempotencyKeyReused("this Idempotency-Key was already used with a different request")
    return StoredResponse(status=stored.response.status, body=stored.response.body, replayed=True)

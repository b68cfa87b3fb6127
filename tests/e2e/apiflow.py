"""Helpers for the e2e tests that drive the API through the project's own client (`payments.client`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest

from app.http.schemas.payments import Payment, Refund
from payments.client import ApiError, AsyncClient

TERMINAL = {"completed", "failed", "cancelled", "refunded", "partially_refunded"}
#: The payment fields its events carry; folding the events in order gives the payment's.
STATE = ("status", "refunded_amount", "provider_reference", "failure_reason", "updated_at", "completed_at")


async def funded(api: AsyncClient, balance: str = "100.00", currency: str = "USD") -> str:
    """A new account of the tenant holding `balance`; its id."""
    return (await api.accounts.create(user_id="user", currency=currency, initial_balance=balance)).id


async def pay(api: AsyncClient, source: str, amount: str = "10.00", *, provider: Any = "stripe",
              outcome: str | None = None, currency: str = "USD", **metadata: str) -> Payment:
    """An external payment from `source`; `outcome` steers the mock provider (API.md §6)."""
    if outcome is not None:
        metadata["mock_outcome"] = outcome
    return await api.payments.create(payment_type="external_payment", source_account_id=source, amount=amount,
                                     currency=currency, provider=provider, metadata=metadata)


async def settled(api: AsyncClient, payment_id: str, statuses: set[str] | None = None,
                  timeout: float = 30) -> Payment:
    """Poll the payment until its status is in `statuses` (default: any terminal one)."""
    wanted = statuses or TERMINAL
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        payment = await api.payments.get(payment_id)
        if payment.status in wanted:
            return payment
        if asyncio.get_running_loop().time() > deadline:
            steps = [(e.type, e.data.get("error")) for e in await api.payments.events(payment_id)]
            raise AssertionError(f"payment stuck: {payment}\nevents: {steps}")
        await asyncio.sleep(0.05)


async def refund_settled(api: AsyncClient, payment_id: str, refund_id: str, timeout: float = 30) -> Refund:
    """Poll the refund until it is no longer pending."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        [refund] = [r async for r in api.refunds.iterate(payment_id) if r.id == refund_id]
        if refund.status != "pending":
            return refund
        assert asyncio.get_running_loop().time() < deadline, f"refund stuck: {refund}"
        await asyncio.sleep(0.05)


async def balance(api: AsyncClient, account_id: str) -> str:
    return (await api.accounts.balance(account_id)).balance


async def folds(api: AsyncClient, payment: Payment) -> list[str]:
    """Folding the payment's events gives the payment (API.md §6); the event types, in order."""
    history = await api.payments.events(payment.id)
    assert [e.sequence for e in history] == sorted(e.sequence for e in history)
    state: dict[str, Any] = {}
    for event in history:
        state.update({k: event.data[k] for k in STATE if k in event.data})
    assert state == {k: getattr(payment, k) for k in STATE}, (state, payment)
    return [e.type for e in history]


async def fails(call: Awaitable[object], slug: str, status: int, *fields: str) -> ApiError:
    """`call` raises the problem `slug` with `status`, naming each of `fields` in its `errors`."""
    with pytest.raises(ApiError) as raised:
        await call
    error = raised.value
    assert (error.code, error.status, error.type) == (slug, status, f"/problems/{slug}"), error
    assert error.title and error.detail and error.request_id, error
    named = {e.field for e in error.errors}
    for field in fields:
        assert any(name == field or (name or "").startswith(f"{field}.") for name in named), (field, error.errors)
    return error

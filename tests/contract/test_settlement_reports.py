"""`PaymentProvider.settlements`: the in-memory fake, and the Stripe and PayPal clients reading the mock server's
settlement reports (each in its own wire format, paged)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import httpx
import pytest

from adapters.memory.providers import InMemoryProvider
from adapters.providers.paypal import PayPalProvider
from adapters.providers.stripe import StripeProvider
from core.providers import ChargeRequest, ProviderDeclined, ProviderUnavailable, RefundRequest
from tests.contract.test_providers import mock_url  # noqa: F401  (the module's own mock server)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=["memory", "stripe", "paypal"])
async def provider(request: pytest.FixtureRequest, mock_url: str):  # noqa: F811
    if request.param == "memory":
        yield InMemoryProvider("memory")
        return
    cls = StripeProvider if request.param == "stripe" else PayPalProvider
    client = cls(f"{mock_url}/{request.param}", "test_key", timeout=5.0)
    client.page_size = 2  # a few charges already span pages
    yield client
    await client.aclose()


def charge(amount: int = 1_000, **metadata: str) -> ChargeRequest:
    return ChargeRequest(payment_id=uuid4(), amount=amount, currency="USD", description=None, metadata=metadata)


def today():
    return datetime.now(UTC).date()


async def test_the_report_lists_what_settled_that_day_with_its_keys(provider) -> None:
    paid = charge(5_000)
    reference = (await provider.charge(paid)).reference
    refund = RefundRequest(refund_id=uuid4(), payment_id=paid.payment_id, amount=1_500, currency="USD",
                           charge_reference=reference, reason=None, metadata={})
    refund_reference = (await provider.refund(refund)).reference
    declined = charge(700, mock_outcome="decline")
    with pytest.raises(ProviderDeclined):
        await provider.charge(declined)
    others = [charge(100 + n) for n in range(3)]
    for each in others:
        await provider.charge(each)
    lines = await provider.settlements(today())
    by_key = {line.idempotency_key: line for line in lines}
    line = by_key[str(paid.payment_id)]
    assert (line.kind, line.charge_key, line.reference, line.amount, line.currency) == (
        "charge", str(paid.payment_id), reference, 5_000, "USD")
    back = by_key[str(refund.refund_id)]
    assert (back.kind, back.charge_key, back.reference, back.charge_reference, back.amount, back.currency) == (
        "refund", str(paid.payment_id), refund_reference, reference, 1_500, "USD")
    assert str(declined.payment_id) not in by_key
    assert {str(each.payment_id) for each in others} <= set(by_key)  # every page was read
    assert len(by_key) == len(lines)
    now = datetime.now(UTC)
    assert all(now - timedelta(minutes=5) < item.settled_at <= now for item in (line, back))
    assert str(paid.payment_id) not in {x.idempotency_key for x in await provider.settlements(today()
                                                                                               - timedelta(days=1))}


async def test_mock_settled_amount_makes_the_report_misstate_an_amount(provider) -> None:
    paid = charge(2_000, mock_settled_amount="1999")
    await provider.charge(paid)
    line = next(x for x in await provider.settlements(today()) if x.idempotency_key == str(paid.payment_id))
    assert line.amount == 1_999


async def test_a_report_that_cannot_be_read_raises_unavailable(provider, mock_url: str) -> None:  # noqa: F811
    if isinstance(provider, InMemoryProvider):
        provider.available = False
        with pytest.raises(ProviderUnavailable):
            await provider.settlements(today())
        return
    async with httpx.AsyncClient() as http:
        await http.put(f"{mock_url}/_mock/config", json={"failure_rate": 1.0})
        try:
            with pytest.raises(ProviderUnavailable):
                await provider.settlements(today())
        finally:
            await http.put(f"{mock_url}/_mock/config", json={"failure_rate": 0.0})


async def test_the_mocks_own_listing_gives_a_day_of_every_provider(mock_url: str) -> None:  # noqa: F811
    stripe = StripeProvider(f"{mock_url}/stripe", "k")
    paypal = PayPalProvider(f"{mock_url}/paypal", "k")
    try:
        a, b = charge(300), charge(400)
        await stripe.charge(a)
        await paypal.charge(b)
    finally:
        await stripe.aclose()
        await paypal.aclose()
    async with httpx.AsyncClient() as http:
        listing = (await http.get(f"{mock_url}/_mock/settlements", params={"date": str(today())})).json()
        paypal_only = (await http.get(f"{mock_url}/_mock/settlements",
                                      params={"date": str(today()), "provider": "paypal"})).json()
        yesterday = (await http.get(f"{mock_url}/_mock/settlements",
                                    params={"date": str(today() - timedelta(days=1))})).json()
        bad = await http.get(f"{mock_url}/_mock/settlements", params={"date": "31/01/2026"})
    rows = {row["idempotency_key"]: row for row in listing["data"]}
    assert listing["date"] == str(today())
    assert {k: rows[str(a.payment_id)][k] for k in ("provider", "type", "amount", "currency",
                                                    "charge_idempotency_key")} == {
        "provider": "stripe", "type": "charge", "amount": 300, "currency": "USD",
        "charge_idempotency_key": str(a.payment_id)}
    assert rows[str(b.payment_id)]["provider"] == "paypal"
    assert str(a.payment_id) not in {row["idempotency_key"] for row in paypal_only["data"]}
    assert yesterday["data"] == []
    assert bad.status_code == 422

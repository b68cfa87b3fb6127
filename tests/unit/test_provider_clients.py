"""The Stripe and PayPal clients on an httpx MockTransport: what they send, and how answers map onto the port."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl
from uuid import uuid4

import httpx
import pytest

from adapters.providers.paypal import PayPalProvider
from adapters.providers.stripe import StripeProvider
from core.providers import ChargeRequest, ProviderDeclined, ProviderResult, ProviderUnavailable, RefundRequest

Handler = Callable[[httpx.Request], httpx.Response]
SECRET = "sk_secret_123"


def client_for(handler: Handler) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def charge(amount: int = 1_050, currency: str = "EUR", description: str | None = "order 7") -> ChargeRequest:
    return ChargeRequest(payment_id=uuid4(), amount=amount, currency=currency, description=description,
                         metadata={"order": "7", "mock_outcome": "succeed"})


def refund(amount: int = 300, currency: str = "EUR", reference: str = "pi_1/x") -> RefundRequest:
    return RefundRequest(refund_id=uuid4(), payment_id=uuid4(), charge_reference=reference, amount=amount,
                         currency=currency, reason="damaged", metadata={"ticket": "9"})


async def test_stripe_sends_a_form_encoded_confirmed_payment_intent() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": "pi_123", "object": "payment_intent", "status": "succeeded"})

    async with client_for(handler) as client:
        provider = StripeProvider("http://stripe.test/base/", SECRET, client=client)
        request = charge()
        assert await provider.charge(request) == ProviderResult("pi_123")

    [sent] = seen
    assert (sent.method, str(sent.url)) == ("POST", "http://stripe.test/base/v1/payment_intents")
    assert sent.headers["authorization"] == f"Bearer {SECRET}"
    assert sent.headers["idempotency-key"] == str(request.payment_id)
    assert sent.headers["content-type"] == "application/x-www-form-urlencoded"
    assert dict(parse_qsl(sent.content.decode())) == {
        "amount": "1050", "currency": "eur", "confirm": "true", "description": "order 7",
        "metadata[order]": "7", "metadata[mock_outcome]": "succeed"}


async def test_stripe_sends_a_refund_of_the_payment_intent_keyed_by_the_refund_id() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": "re_9", "object": "refund", "status": "succeeded"})

    async with client_for(handler) as client:
        request = refund()
        assert await StripeProvider("http://stripe.test", SECRET, client=client).refund(request) == ProviderResult(
            "re_9")

    [sent] = seen
    assert str(sent.url) == "http://stripe.test/v1/refunds"
    assert sent.headers["idempotency-key"] == str(request.refund_id)
    assert dict(parse_qsl(sent.content.decode())) == {
        "payment_intent": "pi_1/x", "amount": "300", "reason": "damaged", "metadata[ticket]": "9"}


@pytest.mark.parametrize(("amount", "currency", "value"), [(1_050, "USD", "10.50"), (1_234, "JPY", "1234"),
                                                           (1_234, "KWD", "1.234"), (5, "EUR", "0.05")])
async def test_paypal_sends_a_captured_order_with_a_decimal_amount(amount: int, currency: str, value: str) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"id": "5O190127TN364715T", "status": "COMPLETED"})

    async with client_for(handler) as client:
        request = charge(amount, currency, description=None)
        assert await PayPalProvider("http://paypal.test", SECRET, client=client).charge(request) == ProviderResult(
            "5O190127TN364715T")

    [sent] = seen
    assert str(sent.url) == "http://paypal.test/v2/checkout/orders"
    assert (sent.headers["authorization"], sent.headers["paypal-request-id"]) == (
        f"Bearer {SECRET}", str(request.payment_id))
    assert json.loads(sent.content) == {
        "intent": "CAPTURE",
        "purchase_units": [{"reference_id": str(request.payment_id), "custom_id": str(request.payment_id),
                            "amount": {"currency_code": currency, "value": value}}],
        "metadata": {"order": "7", "mock_outcome": "succeed"}}


async def test_paypal_refunds_the_capture_with_the_refund_id_as_request_id() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"id": "1JU08902781691411", "status": "COMPLETED"})

    async with client_for(handler) as client:
        request = refund(1_000, "USD", reference="CAP/1")
        assert (await PayPalProvider("http://paypal.test", SECRET, client=client).refund(request)).reference

    [sent] = seen
    assert sent.url.raw_path == b"/v2/payments/captures/CAP%2F1/refund"
    assert sent.headers["paypal-request-id"] == str(request.refund_id)
    assert json.loads(sent.content) == {"amount": {"value": "10.00", "currency_code": "USD"},
                                        "note_to_payer": "damaged", "metadata": {"ticket": "9"}}


STRIPE_DECLINE = {"error": {"type": "card_error", "code": "card_declined", "message": "Your card was declined."}}
PAYPAL_DECLINE = {"name": "UNPROCESSABLE_ENTITY", "details": [{"issue": "INSTRUMENT_DECLINED",
                                                               "description": "Instrument declined."}]}
ANSWERS: list[tuple[str, int, Any, type[Exception], str]] = [
    # provider, status, body, raised, part of the reason
    ("stripe", 402, STRIPE_DECLINE, ProviderDeclined, "Your card was declined."),
    ("paypal", 422, PAYPAL_DECLINE, ProviderDeclined, "Instrument declined."),
    ("stripe", 400, {"error": {"type": "invalid_request_error", "message": "Bad amount"}}, ProviderDeclined,
     "Bad amount"),
    ("stripe", 401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key"}}, ProviderDeclined,
     "Invalid API Key"),
    ("paypal", 401, {"name": "AUTHENTICATION_FAILURE", "message": "Authentication failed"}, ProviderDeclined,
     "Authentication failed"),
    ("paypal", 404, {"name": "RESOURCE_NOT_FOUND"}, ProviderDeclined, "RESOURCE_NOT_FOUND"),
    ("stripe", 403, {}, ProviderDeclined, "HTTP 403"),
    ("stripe", 200, {"id": "pi_1", "status": "requires_payment_method"}, ProviderDeclined, "requires_payment_method"),
    ("paypal", 201, {"id": "O1", "status": "DECLINED"}, ProviderDeclined, "DECLINED"),
    *[(p, s, {"error": {"message": "x"}}, ProviderUnavailable, f"HTTP {s}")
      for p in ("stripe", "paypal") for s in (500, 502, 503, 504, 429, 409, 408)],
    ("stripe", 200, "not json", ProviderUnavailable, "unparseable"),
    ("paypal", 422, "<html>", ProviderUnavailable, "unparseable"),
    ("stripe", 200, [1, 2], ProviderUnavailable, "unparseable"),
    ("paypal", 201, "[" * 100_000, ProviderUnavailable, "unparseable"),
    ("paypal", 201, {"status": "COMPLETED"}, ProviderUnavailable, "unparseable"),
    ("stripe", 200, {"id": "pi_1"}, ProviderUnavailable, "unparseable"),
    ("stripe", 200, {"id": "pi_1", "status": "processing"}, ProviderUnavailable, "processing"),
    ("paypal", 201, {"id": "O1", "status": "PENDING"}, ProviderUnavailable, "PENDING"),
]


def provider_for(name: str, client: httpx.AsyncClient) -> StripeProvider | PayPalProvider:
    kind = StripeProvider if name == "stripe" else PayPalProvider
    return kind(f"http://{name}.test", SECRET, client=client)


@pytest.mark.parametrize(("name", "status", "body", "raised", "reason"), ANSWERS)
async def test_answers_map_onto_declined_or_unavailable(
    name: str, status: int, body: Any, raised: type[Exception], reason: str,
) -> None:
    content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    async with client_for(lambda _: httpx.Response(status, content=content)) as client:
        provider = provider_for(name, client)
        with pytest.raises(raised) as error:
            await provider.charge(charge())
    assert reason in str(error.value) and SECRET not in str(error.value)
    if raised is ProviderDeclined:
        assert not isinstance(error.value, ProviderUnavailable)


@pytest.mark.parametrize("name", ["stripe", "paypal"])
@pytest.mark.parametrize("failure", [httpx.ConnectError, httpx.ReadTimeout, httpx.ConnectTimeout, httpx.ReadError,
                                     httpx.RemoteProtocolError])
async def test_transport_failures_are_unavailable(name: str, failure: type[httpx.TransportError]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise failure("boom", request=request)

    async with client_for(handler) as client:
        with pytest.raises(ProviderUnavailable) as error:
            await provider_for(name, client).refund(refund(currency="USD"))
    assert SECRET not in error.value.reason


@pytest.mark.parametrize("kind", [StripeProvider, PayPalProvider])
async def test_a_refused_connection_is_unavailable(kind: type[StripeProvider | PayPalProvider]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the call: nothing listens there
    provider = kind(f"http://127.0.0.1:{port}", SECRET, timeout=2.0)
    with pytest.raises(ProviderUnavailable, match="unreachable"):
        await provider.charge(charge(currency="USD"))
    await provider.aclose()


async def test_paypal_declines_a_currency_it_cannot_format_without_calling() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(500)

    async with client_for(handler) as client:
        with pytest.raises(ProviderDeclined, match="XTS"):
            await PayPalProvider("http://paypal.test", SECRET, client=client).charge(charge(currency="XTS"))
    assert calls == []


@pytest.mark.parametrize("kind", [StripeProvider, PayPalProvider])
async def test_aclose_closes_only_a_client_the_provider_made(kind: type[StripeProvider | PayPalProvider]) -> None:
    async with httpx.AsyncClient() as shared:
        await kind("http://x.test", SECRET, client=shared).aclose()
        assert not shared.is_closed
    owned = kind("http://x.test", SECRET)
    await owned.aclose()
    assert owned._http._client.is_closed


@pytest.mark.parametrize("url", ["", "stripe.test", "ftp://stripe.test", "http://"])
def test_a_malformed_base_url_is_refused_at_construction(url: str) -> None:
    with pytest.raises((ValueError, httpx.InvalidURL)):
        StripeProvider(url, SECRET)
    with pytest.raises((ValueError, httpx.InvalidURL)):
        PayPalProvider(url, SECRET)


async def test_both_clients_are_named_after_their_provider() -> None:
    stripe, paypal = StripeProvider("http://s.test", "k"), PayPalProvider("http://p.test", "k")
    assert (stripe.name, paypal.name) == ("stripe", "paypal")
    await stripe.aclose()
    await paypal.aclose()

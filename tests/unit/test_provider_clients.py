"""The Stripe and PayPal clients on a recording transport: what they send, and how answers map onto the port.

`AiohttpTransport` itself, on real sockets, is tested in `test_provider_transport.py`."""

from __future__ import annotations

import json
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl
from uuid import uuid4

import attrs
import pytest
from multidict import CIMultiDict
from yarl import URL

from adapters.providers.paypal import PayPalProvider
from adapters.providers.stripe import StripeProvider
from adapters.providers.transport import SendFailed
from core.providers import ChargeRequest, ProviderDeclined, ProviderResult, ProviderUnavailable, RefundRequest

SECRET = "sk_secret_123"


@attrs.frozen
class Sent:
    """A request as the transport received it."""

    method: str
    url: URL
    headers: CIMultiDict[str]
    content: bytes

    @property
    def params(self) -> dict[str, str]:
        return dict(self.url.query)


Answer = tuple[int, bytes]
Handler = Callable[[Sent], Answer]


def answer(status: int, *, body: Any = None, content: bytes | None = None) -> Answer:
    """`status` with `content`, or `body` as JSON, or nothing."""
    return status, content if content is not None else (b"" if body is None else json.dumps(body).encode())


class RecordingTransport:
    """The `HttpTransport` port answering through `handler` (which may raise `SendFailed`), as a context manager."""

    def __init__(self, handler: Handler) -> None:
        self._handler, self.closed = handler, False

    async def send(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None,
                   within: float) -> Answer:
        assert within > 0
        return self._handler(Sent(method, URL(url, encoded=True), CIMultiDict(headers), body or b""))

    async def aclose(self) -> None:
        self.closed = True

    async def __aenter__(self) -> RecordingTransport:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()


def client_for(handler: Handler) -> RecordingTransport:
    return RecordingTransport(handler)


def charge(amount: int = 1_050, currency: str = "EUR", description: str | None = "order 7") -> ChargeRequest:
    return ChargeRequest(payment_id=uuid4(), amount=amount, currency=currency, description=description,
                         metadata={"order": "7", "mock_outcome": "succeed"})


def refund(amount: int = 300, currency: str = "EUR", reference: str = "pi_1/x") -> RefundRequest:
    return RefundRequest(refund_id=uuid4(), payment_id=uuid4(), charge_reference=reference, amount=amount,
                         currency=currency, reason="damaged", metadata={"ticket": "9"})


async def test_stripe_sends_a_form_encoded_confirmed_payment_intent() -> None:
    seen: list[Sent] = []

    def handler(request: Sent) -> Answer:
        seen.append(request)
        return answer(200, body={"id": "pi_123", "object": "payment_intent", "status": "succeeded"})

    async with client_for(handler) as client:
        provider = StripeProvider("http://stripe.test/base/", SECRET, transport=client)
        request = charge()
        assert await provider.charge(request) == ProviderResult("pi_123")

    [sent] = seen
    assert (sent.method, str(sent.url)) == ("POST", "http://stripe.test/base/v1/payment_intents")
    assert sent.headers["authorization"] == f"Bearer {SECRET}"
    assert sent.headers["idempotency-key"] == str(request.payment_id)
    assert sent.headers["content-type"] == "application/x-www-form-urlencoded"
    assert dict(parse_qsl(sent.content.decode())) == {
        "amount": "1050", "currency": "eur", "confirm": "true", "description": "order 7",
        "metadata[order]": "7", "metadata[mock_outcome]": "succeed", "metadata[payment_id]": str(request.payment_id)}


async def test_stripe_ids_override_caller_metadata_of_the_same_name() -> None:
    seen: list[Sent] = []

    def handler(request: Sent) -> Answer:
        seen.append(request)
        return answer(200, body={"id": "x_1", "status": "succeeded"})

    paid = ChargeRequest(payment_id=uuid4(), amount=1, currency="USD", description=None,
                         metadata={"payment_id": "spoofed"})
    back = RefundRequest(refund_id=uuid4(), payment_id=paid.payment_id, charge_reference="x_1", amount=1,
                         currency="USD", reason=None, metadata={"refund_id": "spoofed"})
    async with client_for(handler) as client:
        provider = StripeProvider("http://stripe.test", SECRET, transport=client)
        await provider.charge(paid)
        await provider.refund(back)

    charged, refunded = (dict(parse_qsl(sent.content.decode())) for sent in seen)
    assert (charged["metadata[payment_id]"], refunded["metadata[refund_id]"]) == (
        str(paid.payment_id), str(back.refund_id))


async def test_stripe_sends_a_refund_of_the_payment_intent_keyed_by_the_refund_id() -> None:
    seen: list[Sent] = []

    def handler(request: Sent) -> Answer:
        seen.append(request)
        return answer(200, body={"id": "re_9", "object": "refund", "status": "succeeded"})

    async with client_for(handler) as client:
        request = refund()
        assert await StripeProvider("http://stripe.test", SECRET, transport=client).refund(request) == ProviderResult(
            "re_9")

    [sent] = seen
    assert str(sent.url) == "http://stripe.test/v1/refunds"
    assert sent.headers["idempotency-key"] == str(request.refund_id)
    assert dict(parse_qsl(sent.content.decode())) == {
        "payment_intent": "pi_1/x", "amount": "300", "reason": "damaged", "metadata[ticket]": "9",
        "metadata[refund_id]": str(request.refund_id)}


@pytest.mark.parametrize(("amount", "currency", "value"), [(1_050, "USD", "10.50"), (1_234, "JPY", "1234"),
                                                           (1_234, "KWD", "1.234"), (5, "EUR", "0.05")])
async def test_paypal_sends_a_captured_order_with_a_decimal_amount(amount: int, currency: str, value: str) -> None:
    seen: list[Sent] = []

    def handler(request: Sent) -> Answer:
        seen.append(request)
        return answer(201, body={"id": "5O190127TN364715T", "status": "COMPLETED"})

    async with client_for(handler) as client:
        request = charge(amount, currency, description=None)
        assert await PayPalProvider("http://paypal.test", SECRET, transport=client).charge(request) == ProviderResult(
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
    seen: list[Sent] = []

    def handler(request: Sent) -> Answer:
        seen.append(request)
        return answer(201, body={"id": "1JU08902781691411", "status": "COMPLETED"})

    async with client_for(handler) as client:
        request = refund(1_000, "USD", reference="CAP/1")
        assert (await PayPalProvider("http://paypal.test", SECRET, transport=client).refund(request)).reference

    [sent] = seen
    assert sent.url.raw_path == "/v2/payments/captures/CAP%2F1/refund"
    assert sent.headers["paypal-request-id"] == str(request.refund_id)
    assert json.loads(sent.content) == {"amount": {"value": "10.00", "currency_code": "USD"},
                                        "invoice_id": str(request.refund_id), "note_to_payer": "damaged",
                                        "metadata": {"ticket": "9"}}


STRIPE_DECLINE = {"error": {"type": "card_error", "code": "card_declined", "message": "Your card was declined."}}
PAYPAL_DECLINE = {"name": "UNPROCESSABLE_ENTITY", "details": [{"issue": "INSTRUMENT_DECLINED",
                                                               "description": "Instrument declined."}]}
ANSWERS: list[tuple[str, int, Any, type[Exception], str]] = [
    # provider, status, body, raised, part of the reason
    ("stripe", 402, STRIPE_DECLINE, ProviderDeclined, "Your card was declined."),
    ("paypal", 422, PAYPAL_DECLINE, ProviderDeclined, "Instrument declined."),
    ("stripe", 400, {"error": {"type": "invalid_request_error", "message": "Bad amount"}}, ProviderDeclined,
     "Bad amount"),
    ("stripe", 401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key"}},
     ProviderUnavailable, "stripe refused our API key (HTTP 401)"),
    ("paypal", 401, {"name": "AUTHENTICATION_FAILURE", "message": "Authentication failed"}, ProviderUnavailable,
     "paypal refused our API key (HTTP 401)"),
    ("paypal", 403, {"name": "NOT_AUTHORIZED"}, ProviderUnavailable, "paypal refused our API key (HTTP 403)"),
    ("stripe", 403, {}, ProviderUnavailable, "stripe refused our API key (HTTP 403)"),
    ("paypal", 404, {"name": "RESOURCE_NOT_FOUND"}, ProviderDeclined, "RESOURCE_NOT_FOUND"),
    ("stripe", 410, {}, ProviderDeclined, "HTTP 410"),
    ("stripe", 200, {"id": "pi_1", "status": "requires_payment_method"}, ProviderDeclined, "requires_payment_method"),
    ("paypal", 201, {"id": "O1", "status": "DECLINED"}, ProviderDeclined, "DECLINED"),
    *[(p, s, {"error": {"message": "x"}}, ProviderUnavailable, f"HTTP {s}")
      for p in ("stripe", "paypal") for s in (500, 501, 502, 503, 504, 507, 429, 409, 408, 425)],
    ("stripe", 200, "not json", ProviderUnavailable, "unparseable"),
    ("paypal", 422, "<html>", ProviderUnavailable, "unparseable"),
    ("stripe", 200, [1, 2], ProviderUnavailable, "unparseable"),
    ("paypal", 201, "[" * 100_000, ProviderUnavailable, "unparseable"),
    ("paypal", 201, {"status": "COMPLETED"}, ProviderUnavailable, "unparseable"),
    ("stripe", 200, {"id": "pi_1"}, ProviderUnavailable, "unparseable"),
    ("stripe", 200, {"id": "pi_1", "status": "processing"}, ProviderUnavailable, "processing"),
    ("paypal", 201, {"id": "O1", "status": "PENDING"}, ProviderUnavailable, "PENDING"),
]


def provider_for(name: str, client: RecordingTransport) -> StripeProvider | PayPalProvider:
    kind = StripeProvider if name == "stripe" else PayPalProvider
    return kind(f"http://{name}.test", SECRET, transport=client)


@pytest.mark.parametrize(("name", "status", "body", "raised", "reason"), ANSWERS)
async def test_answers_map_onto_declined_or_unavailable(
    name: str, status: int, body: Any, raised: type[Exception], reason: str,
) -> None:
    content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    async with client_for(lambda _: answer(status, content=content)) as client:
        provider = provider_for(name, client)
        with pytest.raises(raised) as error:
            await provider.charge(charge())
    assert reason in str(error.value) and SECRET not in str(error.value)
    if raised is ProviderDeclined:
        assert not isinstance(error.value, ProviderUnavailable)


def every_call(provider: StripeProvider | PayPalProvider) -> list[Callable[[], Awaitable[object]]]:
    """Each of the provider's four calls, ready to make."""
    return [lambda: provider.charge(charge(currency="USD")), lambda: provider.refund(refund(currency="USD")),
            lambda: provider.find_charge(charge()), lambda: provider.find_refund(refund())]


#: Whether the provider may have processed a request answered with this status (True) or certainly did not.
AMBIGUOUS_BY_STATUS = {401: False, 403: False, 408: False, 409: True, 425: False, 429: False,
                       500: True, 501: True, 502: False, 503: False, 504: False, 507: True, 599: True}


@pytest.mark.parametrize("name", ["stripe", "paypal"])
@pytest.mark.parametrize(("status", "ambiguous"), AMBIGUOUS_BY_STATUS.items())
async def test_unavailable_statuses_say_whether_the_request_may_have_been_processed(
    name: str, status: int, ambiguous: bool,
) -> None:
    async with client_for(lambda _: answer(status, body={"error": {"message": "x"}})) as client:
        provider = provider_for(name, client)
        for call in every_call(provider):
            with pytest.raises(ProviderUnavailable) as error:
                await call()
            assert error.value.ambiguous is ambiguous, error.value.reason


@pytest.mark.parametrize("name", ["stripe", "paypal"])
@pytest.mark.parametrize("status", [401, 403])
async def test_a_refused_api_key_is_transient_not_a_decline(name: str, status: int) -> None:
    async with client_for(lambda _: answer(status, body={"error": {"message": "Invalid API Key"}})) as client:
        with pytest.raises(ProviderUnavailable, match="refused our API key") as error:
            await provider_for(name, client).charge(charge(currency="USD"))
    assert error.value.ambiguous is False and not isinstance(error.value, ProviderDeclined)


@pytest.mark.parametrize("name", ["stripe", "paypal"])
@pytest.mark.parametrize("body", ["not json", "[1]", "[" * 100_000])
async def test_an_unparseable_body_is_ambiguous(name: str, body: str) -> None:
    async with client_for(lambda _: answer(200, content=body.encode())) as client:
        provider = provider_for(name, client)
        for call in every_call(provider):
            with pytest.raises(ProviderUnavailable, match="unparseable") as error:
                await call()
            assert error.value.ambiguous is True


@pytest.mark.parametrize("name", ["stripe", "paypal"])
@pytest.mark.parametrize(("failure", "ambiguous", "reason"), [
    (SendFailed("ConnectError: refused", sent=False), False, "unreachable (ConnectError: refused)"),
    (SendFailed("ConnectTimeout", sent=False), False, "unreachable (ConnectTimeout)"),
    (SendFailed("timeout", sent=True, timed_out=True), True, "did not answer within 10 s"),
    (SendFailed("ServerDisconnectedError", sent=True), True, "unreachable (ServerDisconnectedError)"),
    (SendFailed("ClientPayloadError", sent=True), True, "unreachable (ClientPayloadError)"),
])
async def test_transport_failures_are_unavailable(name: str, failure: SendFailed, ambiguous: bool,
                                                  reason: str) -> None:
    def handler(request: Sent) -> Answer:
        raise failure

    async with client_for(handler) as client:
        provider = provider_for(name, client)
        for call in every_call(provider):
            with pytest.raises(ProviderUnavailable) as error:
                await call()
            assert SECRET not in error.value.reason and reason in error.value.reason
            assert error.value.ambiguous is ambiguous, error.value.reason


@pytest.mark.parametrize("kind", [StripeProvider, PayPalProvider])
async def test_a_refused_connection_is_unavailable(kind: type[StripeProvider | PayPalProvider]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the call: nothing listens there
    provider = kind(f"http://127.0.0.1:{port}", SECRET, timeout=2.0)
    with pytest.raises(ProviderUnavailable, match="unreachable") as error:
        await provider.charge(charge(currency="USD"))
    assert error.value.ambiguous is False
    with pytest.raises(ProviderUnavailable, match="unreachable") as error:
        await provider.find_charge(charge(currency="USD"))
    assert error.value.ambiguous is False
    await provider.aclose()


# --- lookups ---------------------------------------------------------------------------------------


def answering(body: Any, seen: list[Sent]) -> Handler:
    def handler(request: Sent) -> Answer:
        seen.append(request)
        return answer(200, body=body)
    return handler


async def test_stripe_finds_a_charge_by_searching_its_payment_id_metadata() -> None:
    seen: list[Sent] = []
    request = charge()
    ours = {"payment_id": str(request.payment_id)}
    body = {"object": "search_result", "data": [
        {"id": "pi_declined", "status": "requires_payment_method", "metadata": ours},
        {"id": "pi_someone_else", "status": "succeeded", "metadata": {"payment_id": "other"}},
        {"id": "pi_ok", "status": "succeeded", "metadata": ours}]}
    async with client_for(answering(body, seen)) as client:
        provider = StripeProvider("http://stripe.test/base/", SECRET, transport=client)
        assert await provider.find_charge(request) == ProviderResult("pi_ok")

    [sent] = seen
    assert (sent.method, sent.url.path) == ("GET", "/base/v1/payment_intents/search")
    assert sent.params == {"query": f"metadata['payment_id']:'{request.payment_id}'"}
    assert sent.headers["authorization"] == f"Bearer {SECRET}" and "idempotency-key" not in sent.headers
    assert sent.content == b""


async def test_stripe_finds_a_refund_by_searching_its_refund_id_metadata() -> None:
    seen: list[Sent] = []
    request = refund()
    body = {"object": "search_result",
            "data": [{"id": "re_1", "status": "pending", "metadata": {"refund_id": str(request.refund_id)}}]}
    async with client_for(answering(body, seen)) as client:
        assert await StripeProvider("http://stripe.test", SECRET, transport=client).find_refund(request) == (
            ProviderResult("re_1"))

    [sent] = seen
    assert (sent.method, sent.url.path) == ("GET", "/v1/refunds/search")
    assert sent.params == {"query": f"metadata['refund_id']:'{request.refund_id}'"}


async def test_paypal_finds_an_order_by_reference_id_and_a_refund_by_invoice_id() -> None:
    seen: list[Sent] = []
    paid, back = charge(), refund()

    def handler(request: Sent) -> Answer:
        seen.append(request)
        if request.url.path == "/v2/checkout/orders":
            return answer(200, body={"orders": [
                {"id": "O_DECLINED", "status": "DECLINED",
                 "purchase_units": [{"reference_id": str(paid.payment_id)}]},
                {"id": "O_OK", "status": "COMPLETED", "purchase_units": [{"reference_id": str(paid.payment_id)}]}]})
        return answer(200, body={"refunds": [
            {"id": "R_OK", "status": "COMPLETED", "invoice_id": str(back.refund_id)}]})

    async with client_for(handler) as client:
        provider = PayPalProvider("http://paypal.test", SECRET, transport=client)
        assert await provider.find_charge(paid) == ProviderResult("O_OK")
        assert await provider.find_refund(back) == ProviderResult("R_OK")

    orders, refunds = seen
    assert (orders.method, orders.url.path, orders.params) == (
        "GET", "/v2/checkout/orders", {"reference_id": str(paid.payment_id)})
    assert (refunds.method, refunds.url.path, refunds.params) == (
        "GET", "/v2/payments/refunds", {"invoice_id": str(back.refund_id)})
    for sent in seen:
        assert sent.headers["authorization"] == f"Bearer {SECRET}" and "paypal-request-id" not in sent.headers


@pytest.mark.parametrize("name", ["stripe", "paypal"])
async def test_nothing_found_or_only_failures_or_someone_elses_is_none(name: str) -> None:
    paid, back = charge(), refund()
    if name == "stripe":
        charges = {"data": [{"id": "pi_1", "status": "canceled", "metadata": {"payment_id": str(paid.payment_id)}},
                            {"id": "pi_2", "status": "succeeded", "metadata": {"payment_id": "other"}},
                            {"id": "pi_3", "status": "succeeded"}, "junk"]}
        refunds = {"data": [{"id": "re_1", "status": "failed", "metadata": {"refund_id": str(back.refund_id)}}]}
        empty: dict[str, Any] = {"object": "search_result", "data": []}
    else:
        charges = {"orders": [{"id": "O1", "status": "VOIDED", "purchase_units": [
            {"reference_id": str(paid.payment_id)}]}, {"id": "O2", "status": "COMPLETED", "purchase_units": []}]}
        refunds = {"refunds": [{"id": "R1", "status": "CANCELLED", "invoice_id": str(back.refund_id)}]}
        empty = {"orders": [], "refunds": []}
    for charges_body, refunds_body in ((charges, refunds), (empty, empty)):
        def handler(request: Sent, c: Any = charges_body, r: Any = refunds_body) -> Answer:
            return answer(200, body=c if "refund" not in request.url.path else r)

        async with client_for(handler) as client:
            provider = provider_for(name, client)
            assert await provider.find_charge(paid) is None
            assert await provider.find_refund(back) is None


@pytest.mark.parametrize(("name", "body", "reason"), [
    ("stripe", {"object": "search_result"}, "unparseable"),
    ("stripe", {"data": "nope"}, "unparseable"),
    ("stripe", {"data": [{"status": "succeeded", "metadata": {"payment_id": "{id}"}}]}, "unparseable"),
    ("stripe", {"data": [{"id": "pi_1", "status": "processing", "metadata": {"payment_id": "{id}"}}]}, "processing"),
    ("paypal", {"refunds": []}, "unparseable"),
    ("paypal", {"orders": [{"id": "O1", "status": "APPROVED", "purchase_units": [{"reference_id": "{id}"}]}]},
     "APPROVED"),
])
async def test_a_lookup_that_cannot_tell_is_unavailable(name: str, body: Any, reason: str) -> None:
    paid = charge()
    content = json.dumps(body).replace("{id}", str(paid.payment_id)).encode()
    async with client_for(lambda _: answer(200, content=content)) as client:
        with pytest.raises(ProviderUnavailable, match=reason):
            await provider_for(name, client).find_charge(paid)


@pytest.mark.parametrize("name", ["stripe", "paypal"])
@pytest.mark.parametrize("status", [400, 404, 422])
async def test_a_refused_lookup_is_unavailable_never_declined(name: str, status: int) -> None:
    async with client_for(lambda _: answer(status, body={"error": {"message": "bad query"}})) as client:
        with pytest.raises(ProviderUnavailable, match=f"HTTP {status}") as error:
            await provider_for(name, client).find_charge(charge())
    assert not isinstance(error.value, ProviderDeclined) and error.value.ambiguous is False


async def test_paypal_declines_a_currency_it_cannot_format_without_calling() -> None:
    calls: list[Sent] = []

    def handler(request: Sent) -> Answer:
        calls.append(request)
        return answer(500)

    async with client_for(handler) as client:
        with pytest.raises(ProviderDeclined, match="XTS"):
            await PayPalProvider("http://paypal.test", SECRET, transport=client).charge(charge(currency="XTS"))
    assert calls == []


@pytest.mark.parametrize("kind", [StripeProvider, PayPalProvider])
async def test_aclose_closes_only_a_transport_the_provider_made(kind: type[StripeProvider | PayPalProvider]) -> None:
    shared = RecordingTransport(lambda _: answer(200))
    await kind("http://x.test", SECRET, transport=shared).aclose()
    assert not shared.closed
    owned = kind("http://x.test", SECRET)
    await owned.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await owned.charge(charge(currency="USD"))


@pytest.mark.parametrize("url", ["", "stripe.test", "ftp://stripe.test", "http://", "http://x.test:port",
                                 "http://[::1"])
def test_a_malformed_base_url_is_refused_at_construction(url: str) -> None:
    with pytest.raises(ValueError, match="base URL"):
        StripeProvider(url, SECRET)
    with pytest.raises(ValueError, match="base URL"):
        PayPalProvider(url, SECRET)


async def test_both_clients_are_named_after_their_provider() -> None:
    stripe, paypal = StripeProvider("http://s.test", "k"), PayPalProvider("http://p.test", "k")
    assert (stripe.name, paypal.name) == ("stripe", "paypal")
    await stripe.aclose()
    await paypal.aclose()

"""The mock provider server in process (ASGI, no sockets): validation, inspection, config and injected failures."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import httpx
import pytest
from sanic import Sanic

from adapters.providers.mock_server import create_mock_app, main

STRIPE, PAYPAL = "/stripe/v1/payment_intents", "/paypal/v2/checkout/orders"
AUTH = {"Authorization": "Bearer test_key"}


class Mock:
    """An httpx client on one fresh mock app, with helpers that speak both wire formats."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.http = client

    async def stripe(self, key: str | None = None, *, amount: str = "1000", currency: str = "usd",
                     **metadata: str) -> httpx.Response:
        form = {"amount": amount, "currency": currency, "confirm": "true",
                **{f"metadata[{k}]": v for k, v in metadata.items()}}
        return await self.http.post(STRIPE, data=form, headers={**AUTH, "Idempotency-Key": key or str(uuid4())})

    async def paypal(self, key: str | None = None, *, value: str = "10.00", currency: str = "USD",
                     **metadata: str) -> httpx.Response:
        order = {"intent": "CAPTURE", "metadata": metadata,
                 "purchase_units": [{"reference_id": "p1", "amount": {"currency_code": currency, "value": value}}]}
        return await self.http.post(PAYPAL, json=order, headers={**AUTH, "PayPal-Request-Id": key or str(uuid4())})

    async def stripe_refund(self, charge_id: str, key: str | None = None, **form: str) -> httpx.Response:
        return await self.http.post("/stripe/v1/refunds", data={"payment_intent": charge_id, **form},
                                    headers={**AUTH, "Idempotency-Key": key or str(uuid4())})

    async def paypal_refund(self, capture_id: str, body: Any = None, key: str | None = None) -> httpx.Response:
        return await self.http.post(f"/paypal/v2/payments/captures/{capture_id}/refund", json=body,
                                    headers={**AUTH, "PayPal-Request-Id": key or str(uuid4())})

    async def listed(self, table: str = "charges", **params: str) -> list[dict[str, Any]]:
        answer = await self.http.get(f"/_mock/{table}", params=params)
        assert answer.status_code == 200
        data: list[dict[str, Any]] = answer.json()["data"]
        return data

    async def configure(self, **config: Any) -> httpx.Response:
        return await self.http.put("/_mock/config", json=config)


async def started(app: Sanic[Any, Any]) -> tuple[asyncio.Queue[dict[str, str]], asyncio.Task[None]]:
    """Run the app's ASGI lifespan up to "startup complete"; the queue takes the shutdown message."""
    queue: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    ready = asyncio.Event()

    async def send(message: dict[str, str]) -> None:
        if message["type"] == "lifespan.startup.complete":
            ready.set()

    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}}, queue.get, send))
    await queue.put({"type": "lifespan.startup"})
    await asyncio.wait_for(ready.wait(), 10)
    return queue, task


@pytest.fixture
async def mock(request: pytest.FixtureRequest) -> AsyncIterator[Mock]:
    options = getattr(request, "param", {})
    app = create_mock_app(name=f"mock_{uuid4().hex}", **options)
    queue, task = await started(app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mock") as client:
        yield Mock(client)
    await queue.put({"type": "lifespan.shutdown"})
    await asyncio.wait_for(task, 10)


def stripe_error(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    error: dict[str, Any] = answer.json()["error"]
    assert error["type"] and error["message"]
    return error


def paypal_error(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body: dict[str, Any] = answer.json()
    assert body["name"] and body["details"][0]["issue"] and body["details"][0]["description"]
    return body


async def test_health_and_unknown_routes_answer_json_without_a_500(mock: Mock) -> None:
    assert (await mock.http.get("/health")).json() == {"status": "ok"}
    for path in ("/nope", "/stripe/v1/charges", "/paypal/v2/payments/captures//refund", "/_mock"):
        answer = await mock.http.post(path, headers=AUTH)
        assert answer.status_code == 404 and answer.json()["error"]["message"], path
    assert (await mock.http.get(STRIPE)).status_code == 405
    assert (await mock.http.delete("/_mock/charges")).status_code == 405


async def test_a_bearer_key_and_an_idempotency_header_are_required(mock: Mock) -> None:
    form = {"amount": "100", "currency": "usd"}
    assert stripe_error(await mock.http.post(STRIPE, data=form, headers={"Idempotency-Key": "k"}), 401)
    assert stripe_error(await mock.http.post(STRIPE, data=form, headers={"Authorization": "Bearer ",
                                                                        "Idempotency-Key": "k"}), 401)
    assert stripe_error(await mock.http.post(STRIPE, data=form, headers=AUTH), 400)["code"] == (
        "idempotency_key_missing")
    order = {"intent": "CAPTURE", "purchase_units": [{"amount": {"currency_code": "USD", "value": "1.00"}}]}
    assert paypal_error(await mock.http.post(PAYPAL, json=order, headers={"PayPal-Request-Id": "k"}), 401)
    assert paypal_error(await mock.http.post(PAYPAL, json=order, headers=AUTH), 400)["name"] == "INVALID_REQUEST"
    assert await mock.listed() == []


@pytest.mark.parametrize(("amount", "currency"), [
    ("0", "usd"), ("-5", "usd"), ("1.5", "usd"), ("abc", "usd"), ("", "usd"), ("9" * 30, "usd"),
    ("100", "us"), ("100", "usdd"), ("100", "XXX"), ("100", ""), ("100", "ü$d"),
])
async def test_stripe_charges_are_validated(mock: Mock, amount: str, currency: str) -> None:
    error = stripe_error(await mock.stripe(amount=amount, currency=currency), 400)
    assert error["type"] == "invalid_request_error" and error["param"] in {"amount", "currency"}
    assert await mock.listed() == []


@pytest.mark.parametrize("order", [
    {"intent": "AUTHORIZE", "purchase_units": [{"amount": {"currency_code": "USD", "value": "1.00"}}]},
    {"intent": "CAPTURE", "purchase_units": []},
    {"intent": "CAPTURE", "purchase_units": [{"amount": {"currency_code": "USD", "value": "1.001"}}]},
    {"intent": "CAPTURE", "purchase_units": [{"amount": {"currency_code": "JPY", "value": "1.5"}}]},
    {"intent": "CAPTURE", "purchase_units": [{"amount": {"currency_code": "USD", "value": "0.00"}}]},
    {"intent": "CAPTURE", "purchase_units": [{"amount": {"currency_code": "USD", "value": 10}}]},
    {"intent": "CAPTURE", "purchase_units": [{"amount": {"currency_code": "USD", "value": "1e3"}}]},
    {"intent": "CAPTURE", "purchase_units": [{"amount": {"currency_code": "usdx", "value": "1.00"}}]},
    {"intent": "CAPTURE", "purchase_units": [{"amount": "10.00"}]},
    {"intent": "CAPTURE", "purchase_units": [{"amount": {"currency_code": "USD", "value": "1.00"}}],
     "metadata": {"n": 1}},
    {"intent": "CAPTURE", "purchase_units": [{"amount": {"currency_code": "USD", "value": "1.00"}}],
     "metadata": {"mock_outcome": "fail_transient:x"}},
    [], "order", None,
])
async def test_paypal_orders_are_validated(mock: Mock, order: Any) -> None:
    answer = await mock.http.post(PAYPAL, json=order, headers={**AUTH, "PayPal-Request-Id": str(uuid4())})
    assert paypal_error(answer, 400)["details"][0]["issue"] == "INVALID_PARAMETER_VALUE"
    assert await mock.listed() == []


@pytest.mark.parametrize("body", [b"\xff\xfe", b"{", b"a=1&&&=", b"[" * 5000, b"\x00" * 100])
@pytest.mark.parametrize("path", [STRIPE, "/stripe/v1/refunds", PAYPAL, "/paypal/v2/payments/captures/X/refund"])
async def test_garbage_bodies_are_client_errors_never_500(mock: Mock, path: str, body: bytes) -> None:
    key = "Idempotency-Key" if path.startswith("/stripe") else "PayPal-Request-Id"
    answer = await mock.http.post(path, content=body, headers={**AUTH, key: "k"})
    assert 400 <= answer.status_code < 500 and answer.json()


async def test_paypal_amounts_are_decimal_strings_in_the_currency_minor_units(mock: Mock) -> None:
    for value, currency, minor in [("10", "USD", 1_000), ("10.5", "USD", 1_050), ("1234", "JPY", 1_234),
                                   ("1.234", "KWD", 1_234)]:
        key = str(uuid4())
        answer = await mock.paypal(key, value=value, currency=currency)
        assert answer.status_code == 201 and answer.json()["status"] == "COMPLETED"
        [row] = await mock.listed(idempotency_key=key)
        assert (row["amount"], row["currency"]) == (minor, currency)


async def test_the_inspection_endpoints_list_and_filter_every_charge_and_refund(mock: Mock) -> None:
    stripe = (await mock.stripe("s1", amount="1500", currency="eur", order="7")).json()
    declined = await mock.paypal("p1", mock_outcome="decline")
    assert paypal_error(declined, 422)["details"][0]["issue"] == "INSTRUMENT_DECLINED"
    refunded = (await mock.stripe_refund(stripe["id"], "r1", amount="500", reason="damaged")).json()

    charges = await mock.listed()
    assert {row["idempotency_key"] for row in charges} == {"s1", "p1"}
    [row] = await mock.listed(idempotency_key="s1")
    assert set(row) >= {"provider", "id", "idempotency_key", "amount", "currency", "status", "requests", "metadata",
                        "created_at"}
    assert (row["provider"], row["id"], row["amount"], row["currency"], row["status"], row["requests"]) == (
        "stripe", stripe["id"], 1_500, "EUR", "succeeded", 1)
    assert row["metadata"] == {"order": "7"} and row["created_at"].endswith("+00:00")
    assert [r["status"] for r in await mock.listed(provider="paypal")] == ["declined"]
    [refund] = await mock.listed("refunds", charge_id=stripe["id"])
    assert (refund["id"], refund["charge_id"], refund["amount"], refund["currency"], refund["status"]) == (
        refunded["id"], stripe["id"], 500, "EUR", "succeeded")
    assert await mock.listed("refunds", idempotency_key="nope") == []

    assert (await mock.http.post("/_mock/reset")).status_code == 200
    assert await mock.listed() == [] and await mock.listed("refunds") == []


async def test_a_repeated_key_replays_the_first_answer_and_concurrent_ones_wait_for_it(mock: Mock) -> None:
    answers = await asyncio.gather(*(mock.stripe("same") for _ in range(10)))
    assert {a.status_code for a in answers} == {200} and len({a.text for a in answers}) == 1
    [row] = await mock.listed()
    assert row["requests"] == 10

    declined = [await mock.paypal("no", mock_outcome="decline") for _ in range(2)]
    assert [a.status_code for a in declined] == [422, 422] and declined[0].json() == declined[1].json()

    conflict = stripe_error(await mock.stripe("same", amount="999"), 400)
    assert conflict["type"] == "idempotency_error"
    assert paypal_error(await mock.paypal("no", value="9.99"), 422)["details"][0]["issue"] == "DUPLICATE_REQUEST_ID"


async def test_fail_transient_answers_503_per_key_then_charges_once(mock: Mock) -> None:
    statuses = [(await mock.stripe("t", mock_outcome="fail_transient:2")).status_code for _ in range(4)]
    assert statuses == [503, 503, 200, 200]
    [row] = await mock.listed()
    assert (row["status"], row["requests"]) == ("succeeded", 4)
    assert (await mock.stripe("other", mock_outcome="fail_transient:0")).status_code == 200


async def test_a_timeout_hangs_and_records_nothing(mock: Mock) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(mock.paypal("slow", mock_outcome="timeout"), 0.2)
    assert await mock.listed() == []


@pytest.mark.parametrize("mock", [{"failure_rate": 1.0}], indirect=True)
async def test_a_failure_rate_of_one_always_answers_503_and_records_nothing(mock: Mock) -> None:
    for _ in range(5):
        stripe_error(await mock.stripe("k"), 503)
        paypal_error(await mock.paypal("k"), 503)
    assert await mock.listed() == []

    assert (await mock.configure(failure_rate=0)).json() == {"latency": 0.0, "failure_rate": 0.0}
    assert (await mock.stripe("k")).status_code == 200
    [row] = await mock.listed()
    assert row["requests"] == 1  # the injected failures never reached the key


async def held_by_latency(mock: Mock, request: Any) -> None:
    """With a latency longer than any test, `request` is still unanswered (and unrecorded) after the mock has
    answered requests made later; with the latency back to 0 the same request answers at once."""
    assert (await mock.configure(latency=600)).status_code == 200
    held = asyncio.create_task(request())
    try:
        assert (await mock.http.get("/_mock/config")).json() == {"latency": 600.0, "failure_rate": 0.0}
        assert await mock.listed() == []
        assert not held.done()
    finally:
        held.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await held
    assert (await mock.configure(latency=0)).status_code == 200
    assert (await request()).status_code == 200


async def test_latency_delays_provider_requests(mock: Mock) -> None:
    await held_by_latency(mock, mock.stripe)
    assert (await mock.configure(latency=0.2)).status_code == 200
    assert (await mock.http.get("/_mock/config")).json() == {"latency": 0.2, "failure_rate": 0.0}

    assert (await mock.http.post("/_mock/reset")).status_code == 200  # back to the start-up config
    assert (await mock.http.get("/_mock/config")).json() == {"latency": 0.0, "failure_rate": 0.0}


@pytest.mark.parametrize("config", [
    {"latency": -1}, {"latency": 601}, {"latency": "1"}, {"latency": True}, {"latency": None},
    {"failure_rate": 1.5}, {"failure_rate": -0.1}, {"failure_rate": [0.5]}, {"speed": 1}, [], "x",
])
async def test_config_is_validated(mock: Mock, config: Any) -> None:
    answer = await mock.http.put("/_mock/config", json=config)
    assert answer.status_code == 422 and answer.json()["errors"]
    for garbage in (b"{", b"[" * 5000, b"\xff"):
        assert (await mock.http.put("/_mock/config", content=garbage)).status_code == 422
    assert (await mock.http.get("/_mock/config")).json() == {"latency": 0.0, "failure_rate": 0.0}


async def test_config_accepts_numbers_in_range(mock: Mock) -> None:
    answer = await mock.configure(latency=0, failure_rate=0.25)
    assert answer.status_code == 200 and answer.json() == {"latency": 0.0, "failure_rate": 0.25}
    assert (await mock.configure(latency=600)).json() == {"latency": 600.0, "failure_rate": 0.25}


def test_bad_start_up_config_is_refused() -> None:
    with pytest.raises(ValueError, match="failure_rate"):
        create_mock_app(failure_rate=2, name=f"mock_{uuid4().hex}")
    with pytest.raises(SystemExit):
        main(["--latency", "-1"])


async def test_refunds_check_the_charge_and_what_is_left_of_it(mock: Mock) -> None:
    stripe = (await mock.stripe(amount="1000")).json()["id"]
    paypal = (await mock.paypal(value="10.00")).json()["id"]

    assert stripe_error(await mock.stripe_refund("pi_nope"), 404)["code"] == "resource_missing"
    assert paypal_error(await mock.paypal_refund(stripe), 404)["name"] == "RESOURCE_NOT_FOUND"  # another provider's
    assert stripe_error(await mock.stripe_refund(stripe, amount="1001"), 400)["code"] == "amount_too_large"
    answer = await mock.paypal_refund(paypal, {"amount": {"currency_code": "EUR", "value": "1.00"}})
    assert paypal_error(answer, 400)["details"][0]["field"] == "currency"

    assert (await mock.stripe_refund(stripe, amount="300")).json()["amount"] == 300
    assert (await mock.stripe_refund(stripe)).json()["amount"] == 700  # no amount: what is left
    assert stripe_error(await mock.stripe_refund(stripe, amount="1"), 400)["code"] == "amount_too_large"
    whole = await mock.paypal_refund(paypal)  # an empty body refunds the whole capture
    assert whole.status_code == 201 and whole.json()["amount"] == {"currency_code": "USD", "value": "10.00"}
    assert sorted(r["amount"] for r in await mock.listed("refunds")) == [300, 700, 1_000]


async def test_refund_outcomes_are_steered_and_recorded(mock: Mock) -> None:
    charge = (await mock.paypal(value="10.00", mock_refund_outcome="fail_transient:1")).json()["id"]
    body = {"amount": {"currency_code": "USD", "value": "2.00"}}
    assert [(await mock.paypal_refund(charge, body, key="r")).status_code for _ in range(3)] == [503, 201, 201]

    declined = {**body, "metadata": {"mock_refund_outcome": "decline"}}
    assert paypal_error(await mock.paypal_refund(charge, declined, key="d"), 422)
    assert paypal_error(await mock.paypal_refund(charge, declined, key="d"), 422)
    rows = {r["idempotency_key"]: r for r in await mock.listed("refunds")}
    assert {k: (r["status"], r["requests"]) for k, r in rows.items()} == {"r": ("succeeded", 3), "d": ("declined", 2)}


# --- lookups ---------------------------------------------------------------------------------------

STRIPE_SEARCH, STRIPE_REFUND_SEARCH = "/stripe/v1/payment_intents/search", "/stripe/v1/refunds/search"
PAYPAL_ORDERS, PAYPAL_REFUNDS = "/paypal/v2/checkout/orders", "/paypal/v2/payments/refunds"


def search(key: str, value: str) -> dict[str, str]:
    return {"query": f"metadata['{key}']:'{value}'"}


async def test_stripe_searches_charges_and_refunds_by_their_id_metadata(mock: Mock) -> None:
    charged = (await mock.stripe("k1", payment_id="pay-1", order="7")).json()
    declined = await mock.stripe("k2", payment_id="pay-1", mock_outcome="decline")
    assert declined.status_code == 402
    await mock.stripe("k3", payment_id="pay-2")
    refunded = (await mock.stripe_refund(charged["id"], "r1", amount="100", **{"metadata[refund_id]": "ref-1"})).json()

    answer = await mock.http.get(STRIPE_SEARCH, params=search("payment_id", "pay-1"), headers=AUTH)
    assert answer.status_code == 200
    body = answer.json()
    assert (body["object"], body["has_more"]) == ("search_result", False)
    assert [(pi["id"], pi["status"]) for pi in body["data"]] == [
        (charged["id"], "succeeded"), (body["data"][1]["id"], "requires_payment_method")]
    assert body["data"][0] == charged  # the same object the charge was answered with
    assert body["data"][1]["metadata"] == {"payment_id": "pay-1", "mock_outcome": "decline"}

    [found] = (await mock.http.get(STRIPE_REFUND_SEARCH, params=search("refund_id", "ref-1"), headers=AUTH)).json()[
        "data"]
    assert found == refunded and found["status"] == "succeeded"
    for path, query in ((STRIPE_SEARCH, search("payment_id", "no")), (STRIPE_REFUND_SEARCH, search("refund_id", "x"))):
        assert (await mock.http.get(path, params=query, headers=AUTH)).json()["data"] == []


async def test_paypal_finds_orders_by_reference_id_and_refunds_by_invoice_id(mock: Mock) -> None:
    order = {"intent": "CAPTURE", "metadata": {"mock_refund_outcome": "decline"},
             "purchase_units": [{"reference_id": "pay-9", "amount": {"currency_code": "USD", "value": "5.00"}}]}
    created = await mock.http.post(PAYPAL, json=order, headers={**AUTH, "PayPal-Request-Id": "o1"})
    assert created.status_code == 201
    declined = await mock.paypal_refund(created.json()["id"], {"invoice_id": "ref-9"}, key="r1")
    assert declined.status_code == 422

    [found] = (await mock.http.get(PAYPAL_ORDERS, params={"reference_id": "pay-9"}, headers=AUTH)).json()["orders"]
    assert found == created.json() and found["purchase_units"][0]["reference_id"] == "pay-9"
    [refund] = (await mock.http.get(PAYPAL_REFUNDS, params={"invoice_id": "ref-9"}, headers=AUTH)).json()["refunds"]
    assert (refund["status"], refund["invoice_id"]) == ("FAILED", "ref-9")
    assert (await mock.http.get(PAYPAL_ORDERS, params={"reference_id": "p1"}, headers=AUTH)).json() == {"orders": []}

    body = {"invoice_id": "ref-10", "metadata": {"mock_refund_outcome": "succeed"}}
    accepted = await mock.paypal_refund(created.json()["id"], body)
    assert accepted.status_code == 201 and accepted.json()["invoice_id"] == "ref-10"
    [refund] = (await mock.http.get(PAYPAL_REFUNDS, params={"invoice_id": "ref-10"}, headers=AUTH)).json()["refunds"]
    assert refund == accepted.json() and refund["status"] == "COMPLETED"


async def test_declined_paypal_orders_are_listed_as_declined(mock: Mock) -> None:
    order = {"intent": "CAPTURE", "metadata": {"mock_outcome": "decline"},
             "purchase_units": [{"reference_id": "pay-d", "amount": {"currency_code": "USD", "value": "5.00"}}]}
    assert (await mock.http.post(PAYPAL, json=order, headers={**AUTH, "PayPal-Request-Id": "d"})).status_code == 422
    [found] = (await mock.http.get(PAYPAL_ORDERS, params={"reference_id": "pay-d"}, headers=AUTH)).json()["orders"]
    assert found["status"] == "DECLINED"


async def test_lookups_record_and_count_nothing(mock: Mock) -> None:
    await mock.stripe("k", payment_id="pay-1")
    for _ in range(3):
        assert (await mock.http.get(STRIPE_SEARCH, params=search("payment_id", "pay-1"), headers=AUTH)).json()["data"]
        await mock.http.get(PAYPAL_ORDERS, params={"reference_id": "pay-1"}, headers=AUTH)
    [row] = await mock.listed()
    assert row["requests"] == 1
    assert await mock.listed("refunds") == []


async def test_lookups_need_a_bearer_key_but_no_idempotency_header(mock: Mock) -> None:
    query = search("payment_id", "x")
    assert stripe_error(await mock.http.get(STRIPE_SEARCH, params=query), 401)
    assert paypal_error(await mock.http.get(PAYPAL_ORDERS, params={"reference_id": "x"}), 401)
    assert (await mock.http.get(STRIPE_SEARCH, params=query, headers=AUTH)).status_code == 200


@pytest.mark.parametrize(("path", "params"), [
    (STRIPE_SEARCH, {}), (STRIPE_SEARCH, {"query": "status:'succeeded'"}),
    (STRIPE_SEARCH, {"query": "metadata['refund_id']:'x'"}), (STRIPE_SEARCH, {"query": "metadata['payment_id']:''"}),
    (STRIPE_REFUND_SEARCH, {"query": "metadata['payment_id']:'x'"}),
    (PAYPAL_ORDERS, {}), (PAYPAL_ORDERS, {"reference_id": ""}), (PAYPAL_REFUNDS, {"reference_id": "x"}),
])
async def test_malformed_lookups_are_client_errors(mock: Mock, path: str, params: dict[str, str]) -> None:
    answer = await mock.http.get(path, params=params, headers=AUTH)
    assert answer.status_code == 400, answer.text


async def test_a_timeout_charge_is_never_found_and_a_delayed_one_is_found_at_once(mock: Mock) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(mock.stripe("slow", payment_id="pay-t", mock_outcome="timeout"), 0.2)
    assert (await mock.http.get(STRIPE_SEARCH, params=search("payment_id", "pay-t"), headers=AUTH)).json()[
        "data"] == []

    # the answer is held for a minute, far longer than the search below may take: finding the charge while
    # the charge request is still unanswered shows it is recorded before its answer leaves
    delayed = asyncio.create_task(mock.stripe("late", payment_id="pay-l", mock_delay_ms="60000"))

    async def found() -> None:
        while not (await mock.http.get(STRIPE_SEARCH, params=search("payment_id", "pay-l"),
                                       headers=AUTH)).json()["data"]:
            await asyncio.sleep(0.02)

    await asyncio.wait_for(found(), 30)
    assert not delayed.done()
    delayed.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await delayed


@pytest.mark.parametrize("mock", [{"failure_rate": 1.0}], indirect=True)
async def test_lookups_obey_the_failure_rate(mock: Mock) -> None:
    stripe_error(await mock.http.get(STRIPE_SEARCH, params=search("payment_id", "x"), headers=AUTH), 503)
    paypal_error(await mock.http.get(PAYPAL_REFUNDS, params={"invoice_id": "x"}, headers=AUTH), 503)


async def test_lookups_obey_the_latency(mock: Mock) -> None:
    await held_by_latency(mock, lambda: mock.http.get(PAYPAL_ORDERS, params={"reference_id": "x"}, headers=AUTH))


async def test_reset_forgets_what_lookups_find(mock: Mock) -> None:
    await mock.stripe("k", payment_id="pay-r")
    assert (await mock.http.post("/_mock/reset")).status_code == 200
    assert (await mock.http.get(STRIPE_SEARCH, params=search("payment_id", "pay-r"), headers=AUTH)).json()[
        "data"] == []

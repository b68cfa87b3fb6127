"""The `PaymentProvider` contract: the in-memory fake, and the Stripe and PayPal clients against the mock server."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest

from adapters.memory.providers import InMemoryProvider
from adapters.providers.paypal import PayPalProvider
from adapters.providers.stripe import StripeProvider
from core.providers import ChargeRequest, ProviderDeclined, ProviderResult, ProviderUnavailable, RefundRequest

ROOT = Path(__file__).resolve().parents[2]
IMPLEMENTATIONS = ["memory", "stripe", "paypal"]
SHORT_TIMEOUT = 0.3  # for `timeout` outcomes: the mock hangs for minutes
LOOKUP_METADATA = ("payment_id", "refund_id")  # what the Stripe client adds to every charge / refund


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def mock_url() -> Iterator[str]:
    """The mock provider server as its own process, as the stack runs it."""
    port = free_port()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen([sys.executable, "-m", "adapters.providers.mock_server", "--port", str(port)],
                                   cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                if process.poll() is not None:
                    log.seek(0)
                    pytest.fail(f"the mock server exited with {process.returncode}: {log.read().decode()}")
                try:
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "the mock server did not become healthy in 30 s"
                time.sleep(0.05)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class Subject:
    """One implementation under test, a way to read what it recorded for an idempotency key, a way to make
    it fail every call (the mock's failure rate, the fake's `available`), and a copy of it nobody can reach."""

    def __init__(
        self, make: Callable[[float], Any], records: Callable[[str, str], Any],
        failing: Callable[[bool], Any], unreachable: Callable[[], Any],
    ) -> None:
        self._make, self._records, self._failing, self._unreachable = make, records, failing, unreachable
        self.made: list[Any] = []
        self.provider = self.make(5.0)

    def unreachable(self) -> Any:
        """A provider whose calls never reach the provider (connection refused)."""
        provider = self._unreachable()
        self.made.append(provider)
        return provider

    @contextlib.asynccontextmanager
    async def failing(self) -> AsyncIterator[None]:
        """Every call fails before the provider looks at it (an injected 503) while inside."""
        await self._failing(True)
        try:
            yield
        finally:
            await self._failing(False)

    def make(self, timeout: float) -> Any:
        """A provider on the same records, with this client-side timeout."""
        provider = self._make(timeout)
        self.made.append(provider)
        return provider

    async def charges(self, key: str | UUID) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._records("charges", str(key))
        return result

    async def refunds(self, key: str | UUID) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._records("refunds", str(key))
        return result


def memory_subject() -> Subject:
    fake = InMemoryProvider("memory", timeout=SHORT_TIMEOUT)

    async def records(kind: str, key: str) -> list[dict[str, Any]]:
        if kind == "charges":
            return [{"id": c.reference, "status": c.status, "amount": c.amount, "currency": c.currency,
                     "requests": c.requests, "metadata": c.metadata} for c in fake.charges.values() if c.key == key]
        return [{"id": r.reference, "status": r.status, "amount": r.amount, "currency": r.currency,
                 "requests": r.requests, "metadata": r.metadata, "charge_id": r.charge_reference}
                for r in fake.refunds.values() if r.key == key]

    def make(timeout: float) -> InMemoryProvider:
        fake.timeout = min(timeout, SHORT_TIMEOUT)
        return fake

    async def failing(on: bool) -> None:
        fake.available = not on

    def unreachable() -> InMemoryProvider:
        down = InMemoryProvider("memory")
        down.available = False
        return down

    return Subject(make, records, failing, unreachable)


def http_subject(implementation: str, mock_url: str) -> Subject:
    kind = StripeProvider if implementation == "stripe" else PayPalProvider

    async def records(table: str, key: str) -> list[dict[str, Any]]:
        async with httpx.AsyncClient() as http:
            answer = await http.get(f"{mock_url}/_mock/{table}", params={"idempotency_key": key})
        assert answer.status_code == 200
        return [row for row in answer.json()["data"] if row["provider"] == implementation]

    async def failing(on: bool) -> None:
        async with httpx.AsyncClient() as http:
            answer = await http.put(f"{mock_url}/_mock/config", json={"failure_rate": 1.0 if on else 0.0})
        assert answer.status_code == 200

    def unreachable() -> StripeProvider | PayPalProvider:
        port = free_port()  # closed again at once: nothing listens there
        return kind(f"http://127.0.0.1:{port}/{implementation}", "test_key", timeout=5.0)

    return Subject(lambda timeout: kind(f"{mock_url}/{implementation}", "test_key", timeout=timeout), records,
                   failing, unreachable)


@pytest.fixture(params=IMPLEMENTATIONS)
async def subject(request: pytest.FixtureRequest) -> AsyncIterator[Subject]:
    if request.param == "memory":
        yield memory_subject()
        return
    made = http_subject(request.param, request.getfixturevalue("mock_url"))
    yield made
    for provider in made.made:
        await provider.aclose()


def charge(amount: int = 1_000, currency: str = "USD", **metadata: str) -> ChargeRequest:
    return ChargeRequest(payment_id=uuid4(), amount=amount, currency=currency, description="order 42",
                         metadata={"order": "42", **metadata})


def refund(charged: ProviderResult, paid: ChargeRequest, amount: int | None = None, **metadata: str) -> RefundRequest:
    return RefundRequest(refund_id=uuid4(), payment_id=paid.payment_id, charge_reference=charged.reference,
                         amount=paid.amount if amount is None else amount, currency=paid.currency,
                         reason="damaged", metadata=metadata)


def caller_metadata(recorded: dict[str, Any]) -> dict[str, str]:
    """A record's metadata without what a client adds for its lookups."""
    return {key: value for key, value in recorded["metadata"].items() if key not in LOOKUP_METADATA}


# --- charges ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("amount", "currency"), [(1_000, "USD"), (1_234, "JPY"), (1_234, "KWD"), (1, "EUR")])
async def test_a_charge_succeeds_with_a_reference_and_is_recorded(subject: Subject, amount: int, currency: str) -> None:
    request = charge(amount, currency)

    result = await subject.provider.charge(request)

    assert isinstance(result, ProviderResult) and isinstance(result.reference, str) and result.reference
    [recorded] = await subject.charges(request.idempotency_key)
    assert (recorded["id"], recorded["status"], recorded["amount"], recorded["currency"], recorded["requests"]) == (
        result.reference, "succeeded", amount, currency, 1)
    assert caller_metadata(recorded) == {"order": "42"}


async def test_the_same_key_twice_returns_the_first_reference_and_charges_once(subject: Subject) -> None:
    request = charge()

    first = await subject.provider.charge(request)
    second = await subject.provider.charge(request)

    assert second == first
    [recorded] = await subject.charges(request.idempotency_key)
    assert (recorded["id"], recorded["requests"]) == (first.reference, 2)


async def test_concurrent_calls_with_one_key_charge_once(subject: Subject) -> None:
    request = charge()

    results = await asyncio.gather(*(subject.provider.charge(request) for _ in range(8)))

    assert len(set(results)) == 1
    [recorded] = await subject.charges(request.idempotency_key)
    assert (recorded["id"], recorded["requests"]) == (results[0].reference, 8)


async def test_different_keys_are_different_charges(subject: Subject) -> None:
    first, second = charge(), charge()

    assert (await subject.provider.charge(first)) != (await subject.provider.charge(second))
    assert len(await subject.charges(first.idempotency_key)) == len(await subject.charges(second.idempotency_key)) == 1


async def test_a_decline_is_permanent_and_a_repeat_declines_again(subject: Subject) -> None:
    request = charge(mock_outcome="decline")

    for _ in range(2):
        with pytest.raises(ProviderDeclined) as declined:
            await subject.provider.charge(request)
        assert declined.value.reason and not isinstance(declined.value, ProviderUnavailable)

    [recorded] = await subject.charges(request.idempotency_key)
    assert (recorded["status"], recorded["requests"]) == ("declined", 2)


async def test_transient_failures_are_unavailable_then_the_charge_succeeds_once(subject: Subject) -> None:
    request = charge(mock_outcome="fail_transient:2")

    for _ in range(2):
        with pytest.raises(ProviderUnavailable):
            await subject.provider.charge(request)
    assert await subject.charges(request.idempotency_key) == []  # nothing charged yet
    first = await subject.provider.charge(request)
    again = await subject.provider.charge(request)

    assert again == first
    [recorded] = await subject.charges(request.idempotency_key)
    assert (recorded["id"], recorded["status"], recorded["requests"]) == (first.reference, "succeeded", 4)


async def test_a_timeout_is_unavailable_and_charges_nothing(subject: Subject) -> None:
    provider = subject.make(SHORT_TIMEOUT)
    request = charge(mock_outcome="timeout")

    with pytest.raises(ProviderUnavailable) as unavailable:
        await provider.charge(request)

    assert unavailable.value.reason
    assert unavailable.value.ambiguous is True  # only the provider could tell whether it charged
    assert await subject.charges(request.idempotency_key) == []


async def test_an_unknown_outcome_is_declined_and_charges_nothing(subject: Subject) -> None:
    request = charge(mock_outcome="sometimes")

    with pytest.raises(ProviderDeclined, match="sometimes"):
        await subject.provider.charge(request)

    assert await subject.charges(request.idempotency_key) == []


async def test_reusing_a_key_for_another_amount_is_declined(subject: Subject) -> None:
    request = charge(1_000)
    first = await subject.provider.charge(request)

    with pytest.raises(ProviderDeclined):
        await subject.provider.charge(ChargeRequest(payment_id=request.payment_id, amount=999, currency="USD",
                                                    description=None, metadata={}))

    [recorded] = await subject.charges(request.idempotency_key)
    assert (recorded["id"], recorded["amount"]) == (first.reference, 1_000)


# --- refunds ---------------------------------------------------------------------------------------


async def test_a_refund_succeeds_with_its_own_reference(subject: Subject) -> None:
    paid = charge(1_000)
    charged = await subject.provider.charge(paid)
    request = refund(charged, paid, 400, note="partial")

    result = await subject.provider.refund(request)

    assert result.reference and result.reference != charged.reference
    [recorded] = await subject.refunds(request.idempotency_key)
    assert (recorded["id"], recorded["status"], recorded["amount"], recorded["currency"], recorded["charge_id"]) == (
        result.reference, "succeeded", 400, "USD", charged.reference)
    assert caller_metadata(recorded) == {"note": "partial"}


async def test_the_same_refund_key_refunds_once(subject: Subject) -> None:
    paid = charge(1_000)
    request = refund(await subject.provider.charge(paid), paid, 1_000)

    results = [await subject.provider.refund(request)]
    results += await asyncio.gather(*(subject.provider.refund(request) for _ in range(4)))

    assert len(set(results)) == 1
    [recorded] = await subject.refunds(request.idempotency_key)
    assert (recorded["id"], recorded["requests"]) == (results[0].reference, 5)


async def test_a_declined_refund_repeats_its_decline(subject: Subject) -> None:
    paid = charge()
    request = refund(await subject.provider.charge(paid), paid, mock_refund_outcome="decline")

    for _ in range(2):
        with pytest.raises(ProviderDeclined):
            await subject.provider.refund(request)

    [recorded] = await subject.refunds(request.idempotency_key)
    assert (recorded["status"], recorded["requests"]) == ("declined", 2)


async def test_a_refund_follows_the_steering_its_charge_was_made_with(subject: Subject) -> None:
    paid = charge(mock_refund_outcome="decline")
    charged = await subject.provider.charge(paid)

    with pytest.raises(ProviderDeclined):
        await subject.provider.refund(refund(charged, paid))


async def test_a_declined_refund_leaves_the_charge_refundable(subject: Subject) -> None:
    paid = charge(1_000)
    charged = await subject.provider.charge(paid)
    with pytest.raises(ProviderDeclined):
        await subject.provider.refund(refund(charged, paid, 1_000, mock_refund_outcome="decline"))

    assert (await subject.provider.refund(refund(charged, paid, 1_000))).reference


async def test_transient_refund_failures_then_one_refund(subject: Subject) -> None:
    paid = charge()
    request = refund(await subject.provider.charge(paid), paid, mock_refund_outcome="fail_transient:1")

    with pytest.raises(ProviderUnavailable):
        await subject.provider.refund(request)
    assert await subject.refunds(request.idempotency_key) == []
    result = await subject.provider.refund(request)

    [recorded] = await subject.refunds(request.idempotency_key)
    assert (recorded["id"], recorded["status"], recorded["requests"]) == (result.reference, "succeeded", 2)


async def test_a_refund_timeout_is_unavailable_and_refunds_nothing(subject: Subject) -> None:
    paid = charge()
    request = refund(await subject.provider.charge(paid), paid, mock_refund_outcome="timeout")

    with pytest.raises(ProviderUnavailable) as unavailable:
        await subject.make(SHORT_TIMEOUT).refund(request)

    assert unavailable.value.ambiguous is True
    assert await subject.refunds(request.idempotency_key) == []


async def test_partial_refunds_never_exceed_the_charge(subject: Subject) -> None:
    paid = charge(1_000)
    charged = await subject.provider.charge(paid)

    with pytest.raises(ProviderDeclined):
        await subject.provider.refund(refund(charged, paid, 1_001))
    await subject.provider.refund(refund(charged, paid, 400))
    await subject.provider.refund(refund(charged, paid, 600))
    late = refund(charged, paid, 1)
    with pytest.raises(ProviderDeclined):
        await subject.provider.refund(late)

    assert await subject.refunds(late.idempotency_key) == []


async def test_refunding_an_unknown_or_declined_charge_is_declined(subject: Subject) -> None:
    paid = charge()
    with pytest.raises(ProviderDeclined):
        await subject.provider.refund(refund(ProviderResult("pi_does_not_exist"), paid))

    declined = charge(mock_outcome="decline")
    with pytest.raises(ProviderDeclined):
        await subject.provider.charge(declined)
    [recorded] = await subject.charges(declined.idempotency_key)
    with pytest.raises(ProviderDeclined):
        await subject.provider.refund(refund(ProviderResult(recorded["id"]), declined))


# --- lookups ---------------------------------------------------------------------------------------


async def test_a_succeeded_charge_is_found_and_looking_changes_nothing(subject: Subject) -> None:
    request = charge()
    charged = await subject.provider.charge(request)

    assert await subject.provider.find_charge(request) == charged
    assert await subject.provider.find_charge(request) == charged

    [recorded] = await subject.charges(request.idempotency_key)
    assert (recorded["id"], recorded["status"], recorded["requests"]) == (charged.reference, "succeeded", 1)


async def test_a_payment_never_charged_is_not_found_and_looking_charges_nothing(subject: Subject) -> None:
    request = charge()

    assert await subject.provider.find_charge(request) is None

    assert await subject.charges(request.idempotency_key) == []


async def test_a_declined_charge_is_not_found(subject: Subject) -> None:
    request = charge(mock_outcome="decline")
    with pytest.raises(ProviderDeclined):
        await subject.provider.charge(request)

    assert await subject.provider.find_charge(request) is None


async def test_a_timed_out_charge_is_not_found(subject: Subject) -> None:
    request = charge(mock_outcome="timeout")
    with pytest.raises(ProviderUnavailable):
        await subject.make(SHORT_TIMEOUT).charge(request)

    assert await subject.provider.find_charge(request) is None


async def test_a_charge_is_found_once_it_succeeded_after_transient_failures(subject: Subject) -> None:
    request = charge(mock_outcome="fail_transient:1")
    with pytest.raises(ProviderUnavailable):
        await subject.provider.charge(request)
    assert await subject.provider.find_charge(request) is None

    charged = await subject.provider.charge(request)

    assert await subject.provider.find_charge(request) == charged
    [recorded] = await subject.charges(request.idempotency_key)
    assert recorded["requests"] == 2  # the lookups were not counted as charges


async def test_only_the_payments_own_charge_is_found(subject: Subject) -> None:
    mine, other = charge(), charge()
    charged = await subject.provider.charge(mine)
    await subject.provider.charge(other)

    assert await subject.provider.find_charge(mine) == charged
    assert await subject.provider.find_charge(charge()) is None


async def test_a_succeeded_refund_is_found(subject: Subject) -> None:
    paid = charge(1_000)
    charged = await subject.provider.charge(paid)
    request = refund(charged, paid, 400)
    assert await subject.provider.find_refund(request) is None

    refunded = await subject.provider.refund(request)

    assert await subject.provider.find_refund(request) == refunded
    assert await subject.provider.find_refund(refund(charged, paid, 400)) is None  # another refund of it
    [recorded] = await subject.refunds(request.idempotency_key)
    assert recorded["requests"] == 1


async def test_declined_and_timed_out_refunds_are_not_found(subject: Subject) -> None:
    paid = charge()
    charged = await subject.provider.charge(paid)
    declined = refund(charged, paid, mock_refund_outcome="decline")
    with pytest.raises(ProviderDeclined):
        await subject.provider.refund(declined)
    hung = refund(charged, paid, mock_refund_outcome="timeout")
    with pytest.raises(ProviderUnavailable):
        await subject.make(SHORT_TIMEOUT).refund(hung)

    assert await subject.provider.find_refund(declined) is None
    assert await subject.provider.find_refund(hung) is None


async def test_a_refund_is_found_once_it_succeeded_after_transient_failures(subject: Subject) -> None:
    paid = charge()
    request = refund(await subject.provider.charge(paid), paid, mock_refund_outcome="fail_transient:1")
    with pytest.raises(ProviderUnavailable):
        await subject.provider.refund(request)
    assert await subject.provider.find_refund(request) is None

    refunded = await subject.provider.refund(request)

    assert await subject.provider.find_refund(request) == refunded


# --- ambiguity ---------------------------------------------------------------------------------------


async def test_a_transient_failure_is_not_ambiguous(subject: Subject) -> None:
    paid = charge(mock_outcome="fail_transient:1", mock_refund_outcome="fail_transient:1")
    with pytest.raises(ProviderUnavailable) as unavailable:
        await subject.provider.charge(paid)
    assert unavailable.value.ambiguous is False
    charged = await subject.provider.charge(paid)

    with pytest.raises(ProviderUnavailable) as unavailable:
        await subject.provider.refund(refund(charged, paid))
    assert unavailable.value.ambiguous is False


async def test_injected_failures_are_not_ambiguous_and_do_nothing(subject: Subject) -> None:
    paid = charge()
    charged = await subject.provider.charge(paid)
    fresh, back = charge(), refund(charged, paid)

    async with subject.failing():
        for call in (lambda: subject.provider.charge(fresh), lambda: subject.provider.refund(back),
                     lambda: subject.provider.find_charge(paid), lambda: subject.provider.find_refund(back)):
            with pytest.raises(ProviderUnavailable) as unavailable:
                await call()
            assert unavailable.value.ambiguous is False, unavailable.value.reason

    assert await subject.charges(fresh.idempotency_key) == []
    assert await subject.refunds(back.idempotency_key) == []
    assert await subject.provider.find_charge(paid) == charged  # and the provider answers again


async def test_an_unreachable_provider_is_not_ambiguous(subject: Subject) -> None:
    provider, paid = subject.unreachable(), charge()
    back = refund(ProviderResult("ch_1"), paid)

    for call in (lambda: provider.charge(paid), lambda: provider.refund(back),
                 lambda: provider.find_charge(paid), lambda: provider.find_refund(back)):
        with pytest.raises(ProviderUnavailable) as unavailable:
            await call()
        assert unavailable.value.ambiguous is False, unavailable.value.reason

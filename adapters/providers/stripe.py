"""The Stripe-like provider client: PaymentIntents and Refunds over form-encoded HTTP with idempotency keys."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from adapters.providers.answers import found, settled, text
from adapters.providers.reports import MAX_PAGES, items_of, line
from adapters.providers.transport import ProviderClient
from core.providers import ChargeRequest, ProviderResult, ProviderUnavailable, RefundRequest
from core.reconciliation import Settled

_CHARGE_DONE = frozenset({"succeeded"})
_CHARGE_DECLINED = frozenset({"requires_payment_method", "requires_action", "canceled"})
_REFUND_DONE = frozenset({"succeeded", "pending"})  # a pending refund has been accepted; it settles later
_REFUND_FAILED = frozenset({"failed", "canceled"})
#: The metadata every charge / refund carries so that `find_charge` / `find_refund` can search for it.
PAYMENT_ID, REFUND_ID = "payment_id", "refund_id"


class StripeProvider(ProviderClient):
    """The `PaymentProvider` port over a Stripe-like API at `base_url` (the mock server's `/stripe` by default).

    Charges are confirmed PaymentIntents keyed by the payment id, refunds are Refunds
    keyed by the refund id, both through the `Idempotency-Key` header; each also
    carries its id as `metadata[payment_id]` / `metadata[refund_id]`, which the
    lookups search for. A 402 or any other final 4xx is `ProviderDeclined` with
    Stripe's message; see `ProviderHttp` for what counts as `ProviderUnavailable`.
    """

    name = "stripe"
    key_header = "Idempotency-Key"
    page_size = 100  # balance transactions per page of a settlement report (Stripe allows 1 to 100)

    async def charge(self, request: ChargeRequest) -> ProviderResult:
        form = {"amount": str(request.amount), "currency": request.currency.lower(), "confirm": "true"}
        if request.description is not None:
            form["description"] = request.description
        form.update(_metadata({**request.metadata, PAYMENT_ID: str(request.payment_id)}))
        status, body = await self._http.post("/v1/payment_intents", request.idempotency_key, data=form)
        return settled(self.name, status, body, _refusal(body), done=_CHARGE_DONE, failed=_CHARGE_DECLINED)

    async def refund(self, request: RefundRequest) -> ProviderResult:
        form = {"payment_intent": request.charge_reference, "amount": str(request.amount)}
        if request.reason is not None:
            form["reason"] = request.reason
        form.update(_metadata({**request.metadata, REFUND_ID: str(request.refund_id)}))
        status, body = await self._http.post("/v1/refunds", request.idempotency_key, data=form)
        return settled(self.name, status, body, _refusal(body), done=_REFUND_DONE, failed=_REFUND_FAILED)

    async def find_charge(self, request: ChargeRequest) -> ProviderResult | None:
        """The succeeded PaymentIntent whose `metadata[payment_id]` is the request's payment id, or None."""
        return await self._find("/v1/payment_intents/search", PAYMENT_ID, str(request.payment_id),
                                done=_CHARGE_DONE, failed=_CHARGE_DECLINED)

    async def find_refund(self, request: RefundRequest) -> ProviderResult | None:
        """The succeeded (or pending) Refund whose `metadata[refund_id]` is the request's refund id, or None."""
        return await self._find("/v1/refunds/search", REFUND_ID, str(request.refund_id),
                                done=_REFUND_DONE, failed=_REFUND_FAILED)

    async def settlements(self, day: date) -> list[Settled]:
        """The balance transactions of type `charge` and `refund` created on the UTC `day`, every page of them;
        each names the idempotency key of its source and of its PaymentIntent."""
        start = int(datetime.combine(day, time(), tzinfo=UTC).timestamp())
        params = {"created[gte]": str(start), "created[lt]": str(start + 86400), "limit": str(self.page_size)}
        lines: list[Settled] = []
        for _ in range(MAX_PAGES):
            body = await self._http.get("/v1/balance_transactions", params)
            page = items_of(self.name, body, "data")
            lines += [_report_line(item) for item in page if item.get("type") in ("charge", "refund")]
            if body.get("has_more") is not True or not page:
                return lines
            params["starting_after"] = str(page[-1].get("id"))
        raise ProviderUnavailable(f"{self.name}'s settlement report of {day} has more than {MAX_PAGES} pages")

    async def _find(
        self, path: str, key: str, value: str, *, done: frozenset[str], failed: frozenset[str],
    ) -> ProviderResult | None:
        body = await self._http.get(path, {"query": f"metadata['{key}']:'{value}'"})

        def owner(item: dict[str, Any]) -> object:
            metadata = item.get("metadata")
            return metadata.get(key) if isinstance(metadata, dict) else None

        return found(self.name, body.get("data"), value, owner, done=done, failed=failed)


def _report_line(item: dict[str, Any]) -> Settled:
    amount, created = item.get("amount"), item.get("created")
    at = datetime.fromtimestamp(created, UTC) if isinstance(created, int) and 0 <= created < 2**33 else None
    return line("stripe", "charge" if item["type"] == "charge" else "refund", item, key=item.get("idempotency_key"),
                charge_key=item.get("payment_intent_idempotency_key"), reference=item.get("source"),
                charge_reference=item.get("payment_intent"),
                amount=abs(amount) if isinstance(amount, int) and not isinstance(amount, bool) else amount,
                currency=item.get("currency"), at=at)


def _metadata(metadata: dict[str, str]) -> dict[str, str]:
    return {f"metadata[{key}]": value for key, value in metadata.items()}


def _refusal(body: dict[str, Any]) -> str | None:
    """Stripe's message for a refused request: `{"error": {"message": ...}}`."""
    error = body.get("error")
    return text(error.get("message")) if isinstance(error, dict) else None

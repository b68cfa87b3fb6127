"""The Stripe-like provider client: PaymentIntents and Refunds over form-encoded HTTP with idempotency keys."""

from __future__ import annotations

from typing import Any

from adapters.providers.answers import found, settled, text
from adapters.providers.transport import ProviderClient
from core.providers import ChargeRequest, ProviderResult, RefundRequest

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

    async def _find(
        self, path: str, key: str, value: str, *, done: frozenset[str], failed: frozenset[str],
    ) -> ProviderResult | None:
        body = await self._http.get(path, {"query": f"metadata['{key}']:'{value}'"})

        def owner(item: dict[str, Any]) -> object:
            metadata = item.get("metadata")
            return metadata.get(key) if isinstance(metadata, dict) else None

        return found(self.name, body.get("data"), value, owner, done=done, failed=failed)


def _metadata(metadata: dict[str, str]) -> dict[str, str]:
    return {f"metadata[{key}]": value for key, value in metadata.items()}


def _refusal(body: dict[str, Any]) -> str | None:
    """Stripe's message for a refused request: `{"error": {"message": ...}}`."""
    error = body.get("error")
    return text(error.get("message")) if isinstance(error, dict) else None

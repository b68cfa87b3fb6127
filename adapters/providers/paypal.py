"""The PayPal-like provider client: captured orders and capture refunds over JSON with PayPal-Request-Id."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from adapters.providers.answers import found, settled, text
from adapters.providers.transport import ProviderClient
from core.money import format_minor
from core.providers import ChargeRequest, ProviderDeclined, ProviderResult, RefundRequest

_ORDER_DONE = frozenset({"COMPLETED"})
_ORDER_DECLINED = frozenset({"DECLINED", "VOIDED", "FAILED", "PAYER_ACTION_REQUIRED"})
_REFUND_DONE = frozenset({"COMPLETED", "PENDING"})  # a pending refund has been accepted; it settles later
_REFUND_FAILED = frozenset({"CANCELLED", "FAILED"})
_DESCRIPTION_MAX = 127  # PayPal's limits on purchase_units[].description and note_to_payer
_NOTE_MAX = 255


class PayPalProvider(ProviderClient):
    """The `PaymentProvider` port over a PayPal-like API at `base_url` (the mock server's `/paypal` by default).

    A charge is an order with intent CAPTURE keyed by the payment id, a refund refunds
    the capture keyed by the refund id, both through the `PayPal-Request-Id` header.
    The order's `purchase_units[0].reference_id` is the payment id and the refund's
    `invoice_id` the refund id, which the lookups ask for. Amounts travel as decimal
    strings. A 422 or any other final 4xx is `ProviderDeclined` with PayPal's
    description; see `ProviderHttp` for what counts as `ProviderUnavailable`.
    """

    name = "paypal"
    key_header = "PayPal-Request-Id"

    async def charge(self, request: ChargeRequest) -> ProviderResult:
        unit: dict[str, Any] = {
            "reference_id": str(request.payment_id),
            "amount": _amount(request.amount, request.currency),
            "custom_id": request.idempotency_key,
        }
        if request.description is not None:
            unit["description"] = request.description[:_DESCRIPTION_MAX]
        order = {"intent": "CAPTURE", "purchase_units": [unit], "metadata": dict(request.metadata)}
        status, body = await self._http.post("/v2/checkout/orders", request.idempotency_key, body=order)
        return settled(self.name, status, body, _refusal(body), done=_ORDER_DONE, failed=_ORDER_DECLINED)

    async def refund(self, request: RefundRequest) -> ProviderResult:
        refund: dict[str, Any] = {"amount": _amount(request.amount, request.currency),
                                  "invoice_id": str(request.refund_id), "metadata": dict(request.metadata)}
        if request.reason is not None:
            refund["note_to_payer"] = request.reason[:_NOTE_MAX]
        path = f"/v2/payments/captures/{quote(request.charge_reference, safe='')}/refund"
        status, body = await self._http.post(path, request.idempotency_key, body=refund)
        return settled(self.name, status, body, _refusal(body), done=_REFUND_DONE, failed=_REFUND_FAILED)

    async def find_charge(self, request: ChargeRequest) -> ProviderResult | None:
        """The COMPLETED order whose purchase unit's `reference_id` is the request's payment id, or None."""
        payment_id = str(request.payment_id)
        body = await self._http.get("/v2/checkout/orders", {"reference_id": payment_id})
        return found(self.name, body.get("orders"), payment_id, _reference_id, done=_ORDER_DONE, failed=_ORDER_DECLINED)

    async def find_refund(self, request: RefundRequest) -> ProviderResult | None:
        """The completed (or pending) refund whose `invoice_id` is the request's refund id, or None."""
        refund_id = str(request.refund_id)
        body = await self._http.get("/v2/payments/refunds", {"invoice_id": refund_id})
        return found(self.name, body.get("refunds"), refund_id, lambda item: item.get("invoice_id"),
                     done=_REFUND_DONE, failed=_REFUND_FAILED)


def _amount(minor: int, currency: str) -> dict[str, str]:
    try:
        return {"currency_code": currency, "value": format_minor(minor, currency)}
    except KeyError:
        raise ProviderDeclined(f"paypal does not support the currency {currency!r}") from None


def _reference_id(order: dict[str, Any]) -> object:
    units = order.get("purchase_units")
    return units[0].get("reference_id") if isinstance(units, list) and units and isinstance(units[0], dict) else None


def _refusal(body: dict[str, Any]) -> str | None:
    """PayPal's words for a refused request: the first detail's description, else its message or name."""
    details = body.get("details")
    detail = details[0] if isinstance(details, list) and details and isinstance(details[0], dict) else {}
    return text(detail.get("description")) or text(body.get("message")) or text(body.get("name"))

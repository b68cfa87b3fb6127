"""The PayPal-like provider client: captured orders and capture refunds over JSON with PayPal-Request-Id."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

from adapters.providers.answers import found, settled, text
from adapters.providers.reports import MAX_PAGES, items_of, line
from adapters.providers.transport import ProviderClient
from core.money import MINOR_UNITS, format_minor
from core.providers import ChargeRequest, ProviderDeclined, ProviderResult, ProviderUnavailable, RefundRequest
from core.reconciliation import Settled

_ORDER_DONE = frozenset({"COMPLETED"})
_ORDER_DECLINED = frozenset({"DECLINED", "VOIDED", "FAILED", "PAYER_ACTION_REQUIRED"})
_REFUND_DONE = frozenset({"COMPLETED", "PENDING"})  # a pending refund has been accepted; it settles later
_REFUND_FAILED = frozenset({"CANCELLED", "FAILED"})
_DESCRIPTION_MAX = 127  # PayPal's limits on purchase_units[].description and note_to_payer
_NOTE_MAX = 255
#: Transaction event codes of a settlement report: a captured order's payment, and a refund of it.
_CAPTURE, _REFUND = "T0006", "T1107"


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
    page_size = 100  # transactions per page of a settlement report (PayPal allows 1 to 500)

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

    async def settlements(self, day: date) -> list[Settled]:
        """The captures (T0006) and refunds (T1107) of the transaction search over the UTC `day`, every page;
        `invoice_id` is the PayPal-Request-Id each was made under and `custom_field` its capture's."""
        start = datetime.combine(day, time(), tzinfo=UTC)
        params = {"start_date": start.isoformat(), "end_date": (start + timedelta(days=1)).isoformat(),
                  "page_size": str(self.page_size)}
        lines: list[Settled] = []
        for page in range(1, MAX_PAGES + 1):
            body = await self._http.get("/v1/reporting/transactions", {**params, "page": str(page)})
            details = items_of(self.name, body, "transaction_details")
            lines += [_report_line(item) for item in details if _event(item) in (_CAPTURE, _REFUND)]
            pages = body.get("total_pages")
            if not isinstance(pages, int) or page >= pages:
                return lines
        raise ProviderUnavailable(f"{self.name}'s settlement report of {day} has more than {MAX_PAGES} pages")


def _report_line(item: dict[str, Any]) -> Settled:
    info = item.get("transaction_info")
    info = info if isinstance(info, dict) else {}
    money = info.get("transaction_amount")
    money = money if isinstance(money, dict) else {}
    currency, value = money.get("currency_code"), money.get("value")
    amount: object = None
    if isinstance(currency, str) and currency in MINOR_UNITS and isinstance(value, str):
        try:
            exact = abs(Decimal(value)).scaleb(MINOR_UNITS[currency])
            amount = int(exact) if exact == exact.to_integral_value() else None
        except (InvalidOperation, ValueError):
            amount = None
    try:
        at: datetime | None = datetime.fromisoformat(str(info.get("transaction_initiation_date"))).astimezone(UTC)
    except ValueError:
        at = None
    refund = info.get("transaction_event_code") == _REFUND
    return line("paypal", "refund" if refund else "charge", item, key=info.get("invoice_id"),
                charge_key=info.get("custom_field"), reference=info.get("transaction_id"),
                charge_reference=info.get("paypal_reference_id"), amount=amount, currency=currency, at=at)


def _amount(minor: int, currency: str) -> dict[str, str]:
    try:
        return {"currency_code": currency, "value": format_minor(minor, currency)}
    except KeyError:
        raise ProviderDeclined(f"paypal does not support the currency {currency!r}") from None


def _event(item: dict[str, Any]) -> object:
    info = item.get("transaction_info")
    return info.get("transaction_event_code") if isinstance(info, dict) else None


def _reference_id(order: dict[str, Any]) -> object:
    units = order.get("purchase_units")
    return units[0].get("reference_id") if isinstance(units, list) and units and isinstance(units[0], dict) else None


def _refusal(body: dict[str, Any]) -> str | None:
    """PayPal's words for a refused request: the first detail's description, else its message or name."""
    details = body.get("details")
    detail = details[0] if isinstance(details, list) and details and isinstance(details[0], dict) else {}
    return text(detail.get("description")) or text(body.get("message")) or text(body.get("name"))

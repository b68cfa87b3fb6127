"""The mock server's settlement reports: every charge and refund it settled in a time range, in its own listing
(`GET /_mock/settlements?date=`) and in each provider's wire format.

A charge or refund settles when it succeeds, for the amount it was made for; `metadata.mock_settled_amount`
(minor units) makes the report say another amount, so that a test can produce an amount mismatch for real.

- Stripe-like: `GET /stripe/v1/balance_transactions?created[gte]=&created[lt]=&limit=&starting_after=` (Unix
  seconds; oldest first; `has_more` and `starting_after` page through), each a balance transaction of type
  `charge` or `refund` (negative amount) whose `source` is the PaymentIntent or Refund, with the
  `idempotency_key` it was made under and its PaymentIntent's (`payment_intent`,
  `payment_intent_idempotency_key`).
- PayPal-like: `GET /paypal/v1/reporting/transactions?start_date=&end_date=&page=&page_size=` (RFC 3339;
  `total_pages`), each `transaction_info` with event code T0006 (a captured order) or T1107 (a refund, negative,
  `paypal_reference_id` its capture), `invoice_id` the PayPal-Request-Id it was made under and `custom_field`
  its capture's.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from adapters.providers.mock_fields import required
from adapters.providers.mock_state import Answer, MockState, Record
from adapters.providers.mock_wire import Refused
from adapters.providers.outcomes import settled_amount
from core.money import format_minor

CHARGE_CODE, REFUND_CODE = "T0006", "T1107"


def settled_at(record: Record) -> datetime:
    return datetime.fromisoformat(record.created_at).astimezone(UTC)


def settled(state: MockState, provider: str | None, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The charges and refunds that succeeded in [start, end), oldest first, as `/_mock/settlements` lists them."""
    records: Iterable[tuple[str, Record]] = [*(("charge", r) for r in state.charges.values()),
                                             *(("refund", r) for r in state.refunds.values())]
    lines = []
    for kind, record in records:
        at = settled_at(record)
        if record.status != "succeeded" or not start <= at < end or provider not in (None, record.provider):
            continue
        charge = record if kind == "charge" else state.charges_by_id[record.charge_id or ""]
        lines.append({"provider": record.provider, "type": kind, "id": record.id,
                      "idempotency_key": record.idempotency_key, "charge_id": charge.id,
                      "charge_idempotency_key": charge.idempotency_key,
                      "amount": settled_amount(record.metadata, record.amount),
                      "currency": record.currency, "settled_at": at.isoformat().replace("+00:00", "Z"),
                      "at": at})
    return sorted(lines, key=lambda line: (line["at"], line["id"]))


def day_listing(state: MockState, args: dict[str, str]) -> Answer:
    """`GET /_mock/settlements?date=YYYY-MM-DD[&provider=]`: that UTC day's settlements of every provider."""
    try:
        day = date.fromisoformat(required(args, "date"))
    except (Refused, ValueError):
        return 422, {"errors": ["date must be a UTC day, YYYY-MM-DD"]}
    start = datetime.combine(day, time(), tzinfo=UTC)
    lines = settled(state, args.get("provider"), start, start + timedelta(days=1))
    return 200, {"date": day.isoformat(), "data": [{k: v for k, v in line.items() if k != "at"} for line in lines]}


def stripe_page(state: MockState, args: dict[str, str]) -> Answer:
    """One page of Stripe-like balance transactions created in [created[gte], created[lt])."""
    try:
        start = datetime.fromtimestamp(int(args.get("created[gte]", "0")), UTC)
        end = datetime.fromtimestamp(int(args.get("created[lt]", str(2**33))), UTC)
        limit = int(args.get("limit", "10"))
    except (ValueError, OverflowError, OSError):
        raise Refused("created[gte], created[lt] and limit must be whole numbers", "created") from None
    if not 1 <= limit <= 100:
        raise Refused("must be between 1 and 100", "limit")
    lines = settled(state, "stripe", start, end)
    if after := args.get("starting_after"):
        ids = [f"txn_{line['id']}" for line in lines]
        lines = lines[ids.index(after) + 1:] if after in ids else []
    data = [{"id": f"txn_{line['id']}", "object": "balance_transaction", "type": line["type"],
             "reporting_category": line["type"], "status": "available",
             "amount": line["amount"] if line["type"] == "charge" else -line["amount"],
             "currency": line["currency"].lower(), "created": int(line["at"].timestamp()), "source": line["id"],
             "idempotency_key": line["idempotency_key"], "payment_intent": line["charge_id"],
             "payment_intent_idempotency_key": line["charge_idempotency_key"]} for line in lines[:limit]]
    return 200, {"object": "list", "url": "/v1/balance_transactions", "has_more": len(lines) > limit, "data": data}


def paypal_page(state: MockState, args: dict[str, str]) -> Answer:
    """One page of PayPal-like transactions (captures and refunds) in [start_date, end_date)."""
    try:
        start = datetime.fromisoformat(required(args, "start_date")).astimezone(UTC)
        end = datetime.fromisoformat(required(args, "end_date")).astimezone(UTC)
        page, size = int(args.get("page", "1")), int(args.get("page_size", "100"))
    except ValueError:
        raise Refused("start_date and end_date must be RFC 3339 times, page and page_size numbers",
                      "start_date") from None
    if page < 1 or not 1 <= size <= 500:
        raise Refused("page must be 1 or more, page_size between 1 and 500", "page_size")
    lines = settled(state, "paypal", start, end)
    details = []
    for line in lines[(page - 1) * size:page * size]:
        charge = line["type"] == "charge"
        value = format_minor(line["amount"] if charge else -line["amount"], line["currency"])
        info = {"transaction_id": line["id"], "transaction_event_code": CHARGE_CODE if charge else REFUND_CODE,
                "transaction_initiation_date": line["settled_at"], "transaction_updated_date": line["settled_at"],
                "transaction_amount": {"currency_code": line["currency"], "value": value},
                "transaction_status": "S", "invoice_id": line["idempotency_key"],
                "custom_field": line["charge_idempotency_key"]}
        if not charge:
            info |= {"paypal_reference_id": line["charge_id"], "paypal_reference_id_type": "TXN"}
        details.append({"transaction_info": info})
    pages = max(1, -(-len(lines) // size))
    return 200, {"transaction_details": details, "page": page, "total_items": len(lines), "total_pages": pages,
                 "start_date": start.isoformat(), "end_date": end.isoformat()}

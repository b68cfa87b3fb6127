"""Reading a provider's settlement report: each line checked into the port's `Settled`, pages followed to the end."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from adapters.providers.answers import text
from core.money import MAX_MINOR, MINOR_UNITS
from core.providers import ProviderUnavailable
from core.reconciliation import Kind, Settled

#: A report longer than this many pages is not believed (a provider paging forever must not hang the run).
MAX_PAGES = 10_000


def line(provider: str, kind: Kind, item: dict[str, Any], *, key: object, charge_key: object, reference: object,
         charge_reference: object, amount: object, currency: object, at: datetime | None) -> Settled:
    """One report line from the fields a client picked out of `item`; `ProviderUnavailable` if one is missing
    or malformed (a report read in part would make everything after the bad line look missing)."""
    code = currency.upper() if isinstance(currency, str) else None
    fields = (text(key), text(charge_key), text(reference))
    if None in fields or code not in MINOR_UNITS or at is None or isinstance(amount, bool) \
            or not isinstance(amount, int) or not 0 < amount <= MAX_MINOR \
            or (kind == "refund" and text(charge_reference) is None):
        raise ProviderUnavailable(f"{provider} sent an unparseable settlement report line: {item!r}"[:500])
    assert code is not None
    return Settled(kind=kind, idempotency_key=str(key), charge_key=str(charge_key), reference=str(reference),
                   charge_reference=text(charge_reference) if kind == "refund" else None, amount=amount,
                   currency=code, settled_at=at)


def items_of(provider: str, body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The list `name` of a report page; `ProviderUnavailable` if it is not a list of objects."""
    found = body.get(name)
    if not isinstance(found, list) or not all(isinstance(item, dict) for item in found):
        raise ProviderUnavailable(f"{provider} sent an unparseable settlement report page")
    return found

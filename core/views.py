"""Public representations of entities (API.md shapes), shared by HTTP responses and event payloads."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from core.accounts import Account, BalanceAt
from core.batches import BatchResult, LegResult
from core.clock import timestamp
from core.errors import CoreError
from core.holds import Hold
from core.ledger import Entry, PostedBalance, Statement
from core.money import format_minor
from core.payments import Payment, PaymentEvent
from core.reconciliation import Item, MatchResult, Reconciliation
from core.refunds import Refund
from core.webhooks import Delivery, Subscription


def account_view(account: Account) -> dict[str, Any]:
    """API.md §3 Account."""
    return {
        "id": str(account.id),
        "user_id": account.user_id,
        "currency": account.currency,
        "balance": format_minor(account.balance, account.currency),
        "available_balance": format_minor(account.available_balance, account.currency),
        "overdraft_limit": format_minor(account.overdraft_limit, account.currency),
        "status": account.status,
        "version": account.version,
        "metadata": account.metadata,
        "created_at": timestamp(account.created_at),
        "updated_at": timestamp(account.updated_at),
    }


def hold_view(hold: Hold, now: datetime | None = None) -> dict[str, Any]:
    """API.md §9 Hold; `status` as of `now` when given (an active hold past its expiry reads `expired`)."""
    currency = hold.currency
    return {
        "id": str(hold.id),
        "status": hold.effective_status(now) if now is not None else hold.status,
        "source_account_id": str(hold.source_account_id),
        "destination_account_id": str(hold.destination_account_id),
        "amount": format_minor(hold.amount, currency),
        "captured_amount": format_minor(hold.captured_amount, currency),
        "currency": currency,
        "payment_id": str(hold.payment_id) if hold.payment_id else None,
        "expires_at": timestamp(hold.expires_at),
        "description": hold.description,
        "metadata": hold.metadata,
        "created_at": timestamp(hold.created_at),
        "updated_at": timestamp(hold.updated_at),
    }


def balance_view(read: BalanceAt) -> dict[str, Any]:
    """API.md §3 balance, read at `as_of`; `held` is what active holds reserve (none yet: holds are not built)."""
    account, as_of = read.account, read.as_of
    return {
        "account_id": str(account.id),
        "currency": account.currency,
        "balance": format_minor(account.balance, account.currency),
        "available_balance": format_minor(account.available_balance, account.currency),
        "held": format_minor(account.balance - account.available_balance, account.currency),
        "version": account.version,
        "as_of": timestamp(as_of),
    }


def posted_balance_view(read: PostedBalance) -> dict[str, Any]:
    """API.md §3 balance with `?at=`: the posted balance then (no `available_balance` or `held`)."""
    currency = read.account.currency
    return {"account_id": str(read.account.id), "currency": currency,
            "balance": format_minor(read.balance, currency), "version": read.version, "as_of": timestamp(read.as_of)}


def statement_head(statement: Statement) -> dict[str, Any]:
    """API.md §3 statement without its `entries` (they stream after it)."""
    currency, window = statement.account.currency, statement.window
    return {"account_id": str(statement.account.id), "currency": currency,
            "from": timestamp(statement.start), "to": timestamp(statement.end),
            "opening_balance": format_minor(window.opening, currency),
            "closing_balance": format_minor(window.closing, currency),
            "total_credits": format_minor(window.credits, currency),
            "total_debits": format_minor(window.debits, currency)}


def entry_view(entry: Entry) -> dict[str, Any]:
    """API.md §3 ledger entry; `amount` is signed; `hash` chains it to the account's previous entry (§4)."""
    return {
        "id": str(entry.id),
        "account_id": str(entry.account_id),
        "payment_id": str(entry.payment_id) if entry.payment_id else None,
        "type": entry.type,
        "amount": format_minor(entry.amount, entry.currency),
        "balance_after": format_minor(entry.balance_after, entry.currency),
        "currency": entry.currency,
        "created_at": timestamp(entry.created_at),
        "hash": entry.hash.hex(),
    }


def payment_view(payment: Payment) -> dict[str, Any]:
    """API.md §6 Payment."""
    return {
        "id": str(payment.id),
        "payment_type": payment.payment_type,
        "status": payment.status,
        "source_account_id": str(payment.source_account_id),
        "destination_account_id": str(payment.destination_account_id) if payment.destination_account_id else None,
        "amount": format_minor(payment.amount, payment.currency),
        "currency": payment.currency,
        "provider": payment.provider,
        "provider_reference": payment.provider_reference,
        "refunded_amount": format_minor(payment.refunded_amount, payment.currency),
        "failure_code": payment.failure_code,
        "failure_reason": payment.failure_reason,
        "description": payment.description,
        "metadata": payment.metadata,
        "created_at": timestamp(payment.created_at),
        "updated_at": timestamp(payment.updated_at),
        "completed_at": timestamp(payment.completed_at),
    }


def event_view(event: PaymentEvent) -> dict[str, Any]:
    """One entry of `GET /payments/{id}/events`."""
    return {
        "id": str(event.id),
        "payment_id": str(event.payment_id),
        "sequence": event.sequence,
        "type": event.type,
        "data": event.data,
        "correlation_id": event.correlation_id,
        "created_at": timestamp(event.created_at),
    }


def refund_view(refund: Refund) -> dict[str, Any]:
    """API.md §6 Refund."""
    return {
        "id": str(refund.id),
        "payment_id": str(refund.payment_id),
        "amount": format_minor(refund.amount, refund.currency),
        "currency": refund.currency,
        "status": refund.status,
        "reason": refund.reason,
        "provider_reference": refund.provider_reference,
        "failure_reason": refund.failure_reason,
        "created_at": timestamp(refund.created_at),
        "updated_at": timestamp(refund.updated_at),
        "completed_at": timestamp(refund.completed_at),
    }


def webhook_view(subscription: Subscription, *, with_secret: bool = False) -> dict[str, Any]:
    """API.md §7 webhook; the secret only when just created or rotated (it is shown once)."""
    view: dict[str, Any] = {
        "id": str(subscription.id),
        "url": subscription.url,
        "events": list(subscription.events),
        "description": subscription.description,
        "enabled": subscription.enabled,
    }
    if with_secret:
        view["secret"] = subscription.secret
    view.update({
        "previous_secret_expires_at": timestamp(subscription.previous_secrets_expire_at),
        "created_at": timestamp(subscription.created_at),
        "updated_at": timestamp(subscription.updated_at),
    })
    return view


def delivery_view(delivery: Delivery) -> dict[str, Any]:
    """API.md §7 delivery log entry."""
    return {
        "id": str(delivery.id),
        "webhook_id": str(delivery.subscription_id),
        "event_id": str(delivery.event_id),
        "event_type": delivery.event_type,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "next_attempt_at": timestamp(delivery.next_attempt_at),
        "delivered_at": timestamp(delivery.delivered_at),
        "created_at": timestamp(delivery.created_at),
        "updated_at": timestamp(delivery.updated_at),
    }


def reconciliation_view(reconciliation: Reconciliation) -> dict[str, Any]:
    """API.md §12 reconciliation; besides its fields, `failure_reason` (why a `failed` run failed), `created_at`
    and `completed_at`."""
    return {
        "id": str(reconciliation.id),
        "provider": reconciliation.provider,
        "date": reconciliation.day.isoformat(),
        "status": reconciliation.status,
        "summary": {result.value: reconciliation.summary.get(result, 0) for result in MatchResult},
        "items": [reconciliation_item_view(item) for item in reconciliation.items],
        "failure_reason": reconciliation.failure_reason,
        "created_at": timestamp(reconciliation.created_at),
        "completed_at": timestamp(reconciliation.completed_at),
    }


def reconciliation_item_view(item: Item) -> dict[str, Any]:
    """An unmatched item; besides API.md §12's fields, `type` (`charge` or `refund`), and `provider_currency`
    when the provider settled it in another currency than the ledger's (`provider_amount` is in it)."""
    view = {
        "result": item.result,
        "type": item.kind,
        "idempotency_key": item.idempotency_key,
        "payment_id": str(item.payment_id) if item.payment_id else None,
        "provider_reference": item.provider_reference,
        "ledger_amount": None if item.ledger_amount is None else format_minor(item.ledger_amount, item.currency),
        "provider_amount": None if item.provider_amount is None else format_minor(
            item.provider_amount, item.provider_currency or item.currency),
        "currency": item.currency,
    }
    return view | ({"provider_currency": item.provider_currency} if item.provider_currency else {})


def batch_view(batch: BatchResult, problem: Callable[[CoreError], dict[str, Any]]) -> dict[str, Any]:
    """API.md §10 batch: each transfer's result in order (`problem` renders a failing one's error); a dry run
    shows each account's balance before and after, and its payments no `id` (none was made)."""
    view: dict[str, Any] = {
        "id": str(batch.id) if batch.id else None,
        "atomic": batch.atomic,
        "dry_run": batch.dry_run,
        "status": batch.status,
        "results": [_leg_view(result, problem, dry_run=batch.dry_run) for result in batch.results],
        "created_at": timestamp(batch.created_at),
    }
    if batch.dry_run:
        view["balances"] = [{"account_id": str(change.account_id),
                             "balance_before": format_minor(change.before, change.currency),
                             "balance_after": format_minor(change.after, change.currency)}
                            for change in batch.balances]
    return view


def _leg_view(result: LegResult, problem: Callable[[CoreError], dict[str, Any]], *, dry_run: bool) -> dict[str, Any]:
    view: dict[str, Any] = {"index": result.index, "reference": result.reference}
    if result.payment is not None:
        payment = payment_view(result.payment)
        if dry_run:
            del payment["id"]
        return view | {"status": 201, "payment": payment}
    assert result.error is not None
    error = problem(result.error)
    return view | {"status": error["status"], "error": error}

"""The shapes of /api/v1/accounts: opening and changing an account, an account, its balance and its ledger
entries."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar, Literal

import attrs

from app.http.schemas.fields import AMOUNT_OR_ZERO, CURRENCY, CURRENCY_OUT, METADATA, MONEY_OUT, TIME, UUID
from app.http.schemas.statuses import AccountStatus


@attrs.frozen(kw_only=True)
class CreateAccountRequest:
    __openapi_strict__ = True
    user_id: str = attrs.field(metadata={"openapi": {"minLength": 1, "maxLength": 255, "examples": ["user_42"]}})
    currency: str = attrs.field(metadata=CURRENCY)
    initial_balance: Decimal | None = attrs.field(default=None, metadata=AMOUNT_OR_ZERO)
    metadata: dict[str, str] | None = attrs.field(default=None, metadata=METADATA)


_OVERDRAFT_LIMIT = {"not_null": True, "openapi": {**AMOUNT_OR_ZERO["openapi"], "examples": ["50.00"], "description": (
    "How far below zero debits may take the balance, ≥ 0 (default 0), in the account's currency's places")}}


@attrs.frozen(kw_only=True)
class UpdateAccountRequest:
    """`PATCH /accounts/{id}`: each field given changes; `metadata` replaces the whole object."""

    __openapi_strict__ = True
    metadata: dict[str, str] | None = attrs.field(default=None, metadata={**METADATA, "not_null": True})
    status: AccountStatus | None = attrs.field(default=None, metadata={"not_null": True, "openapi": {
        "description": "active ⇄ frozen; either → closed (needs a zero balance and nothing in flight; final)"}})
    overdraft_limit: Decimal | None = attrs.field(default=None, metadata=_OVERDRAFT_LIMIT)


@attrs.frozen(kw_only=True)
class Account:
    __openapi_example__: ClassVar[dict[str, Any]] = {
        "id": "0190a6a4-3c1e-7d2a-9b1e-2f6a4c8d0e11", "user_id": "user_42", "currency": "USD", "balance": "100.00",
        "available_balance": "95.00", "overdraft_limit": "0.00", "status": "active", "version": 3,
        "metadata": {"tier": "gold"}, "created_at": "2026-01-31T12:00:00Z", "updated_at": "2026-01-31T12:05:00Z"}
    id: str = attrs.field(metadata=UUID)
    user_id: str = attrs.field(metadata={"openapi": {"examples": ["user_42"]}})
    currency: str = attrs.field(metadata=CURRENCY_OUT)
    balance: str = attrs.field(metadata=MONEY_OUT)
    available_balance: str = attrs.field(metadata=MONEY_OUT)
    overdraft_limit: str = attrs.field(metadata=MONEY_OUT)
    status: AccountStatus
    version: int
    metadata: dict[str, str]
    created_at: str = attrs.field(metadata=TIME)
    updated_at: str = attrs.field(metadata=TIME)


@attrs.frozen(kw_only=True)
class Balance:
    """Without `at`: now, with what holds reserve. With `at`: the posted balance then (no available or held)."""

    account_id: str = attrs.field(metadata=UUID)
    currency: str = attrs.field(metadata=CURRENCY_OUT)
    balance: str = attrs.field(metadata=MONEY_OUT)
    version: int
    as_of: str = attrs.field(metadata=TIME)
    available_balance: str = attrs.field(default="", metadata=MONEY_OUT)
    held: str = attrs.field(default="", metadata=MONEY_OUT)


@attrs.frozen(kw_only=True)
class LedgerEntry:
    id: str = attrs.field(metadata=UUID)
    account_id: str = attrs.field(metadata=UUID)
    payment_id: str | None = attrs.field(metadata=UUID)
    type: Literal["debit", "credit"]
    amount: str = attrs.field(metadata=MONEY_OUT)
    balance_after: str = attrs.field(metadata=MONEY_OUT)
    currency: str = attrs.field(metadata=CURRENCY_OUT)
    created_at: str = attrs.field(metadata=TIME)
    hash: str = attrs.field(metadata={"openapi": {
        "pattern": "^[0-9a-f]{64}$", "examples": ["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
        "description": "SHA-256 (hex) over the account's previous entry's hash and this entry's fields: "
                       "editing, removing or reordering a stored entry breaks the chain (docs/design.md, "
                       "\"Tamper-evident entries\", spells out the text hashed)"}})


@attrs.frozen(kw_only=True)
class Statement:
    """`GET /accounts/{id}/statement`: `opening_balance` + the entries = `closing_balance`."""

    account_id: str = attrs.field(metadata=UUID)
    currency: str = attrs.field(metadata=CURRENCY_OUT)
    from_: str = attrs.field(metadata={"json_name": "from", **TIME})
    to: str = attrs.field(metadata=TIME)
    opening_balance: str = attrs.field(metadata=MONEY_OUT)
    closing_balance: str = attrs.field(metadata=MONEY_OUT)
    total_credits: str = attrs.field(metadata=MONEY_OUT)
    total_debits: str = attrs.field(metadata=MONEY_OUT)
    entries: list[LedgerEntry]

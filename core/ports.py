"""Ports: the Protocols core needs from the outside world. Adapters fit them structurally."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from types import TracebackType
from typing import Generic, Protocol, TypeVar
from uuid import UUID

import attrs

from core.accounts import Account
from core.events import OutboxMessage
from core.idempotency import IdempotencyRecord, IdempotentRequest
from core.ledger import Entry
from core.payments import Payment, PaymentEvent
from core.refunds import Refund
from core.tenants import ApiKey, Tenant
from core.webhooks import Delivery, DeliveryRef, SendResult, Subscription
from core.work import DeadLetter, WorkItem

T = TypeVar("T")


@attrs.frozen
class Page(Generic[T]):
    """One page of a newest-first keyset listing; `next_cursor` is opaque, None at the end."""

    items: list[T]
    next_cursor: str | None


class Clock(Protocol):
    """The current time, in UTC."""

    def now(self) -> datetime: ...


class Accounts(Protocol):
    """User and system accounts of every tenant.

    Reads never return another tenant's account. `lock` takes row locks that last
    until the unit of work ends, in ascending id order, so two units of work that
    lock overlapping sets can never deadlock. `add` and `save` are buffered and
    written by `UnitOfWork.commit`.
    """

    async def get(self, tenant_id: UUID, account_id: UUID) -> Account | None: ...

    async def lock(self, tenant_id: UUID, account_ids: Sequence[UUID]) -> dict[UUID, Account]: ...

    async def lock_system(self, tenant_id: UUID, kind: str, currency: str) -> Account:
        """Lock the tenant's system account of `kind` in `currency`, creating it if needed."""
        ...

    async def list(
        self, tenant_id: UUID, *, user_id: str | None, limit: int, cursor: str | None
    ) -> Page[Account]:
        """User accounts, newest first. Raises `ValidationFailed` for a malformed cursor."""
        ...

    def add(self, account: Account) -> None: ...

    def save(self, account: Account) -> None: ...


class Ledger(Protocol):
    """Append-only ledger entries. `add` is buffered until commit."""

    def add(self, entries: Sequence[Entry]) -> None: ...

    async def list(self, tenant_id: UUID, account_id: UUID, *, limit: int, cursor: str | None) -> Page[Entry]:
        """An account's entries, newest first. Raises `ValidationFailed` for a malformed cursor."""
        ...


@attrs.frozen(kw_only=True)
class PaymentFilter:
    """API.md §6 list filters; None means any."""

    status: str | None = None
    payment_type: str | None = None
    account_id: UUID | None = None
    provider: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


class Payments(Protocol):
    """Payments and their event history; `add`/`save` write the payment's pending events too.

    `lock` takes the payment's row lock until the unit of work ends. `save` writes
    the changed payment at commit only if its stored version is still the one it
    was read at; otherwise commit raises `ConcurrencyConflict`.
    """

    async def get(self, tenant_id: UUID, payment_id: UUID) -> Payment | None: ...

    async def lock(self, tenant_id: UUID, payment_id: UUID) -> Payment | None: ...

    async def list(
        self, tenant_id: UUID, where: PaymentFilter, *, limit: int, cursor: str | None
    ) -> Page[Payment]:
        """Newest first. Raises `ValidationFailed` for a malformed cursor."""
        ...

    def add(self, payment: Payment) -> None: ...

    def save(self, payment: Payment) -> None: ...

    async def events(self, tenant_id: UUID, payment_id: UUID) -> builtins.list[PaymentEvent]: ...


class Refunds(Protocol):
    """Refunds of payments. `add`/`save` are buffered until commit; `for_payment` is newest first."""

    async def lock(self, tenant_id: UUID, refund_id: UUID) -> Refund | None: ...

    async def for_payment(self, tenant_id: UUID, payment_id: UUID) -> builtins.list[Refund]: ...

    async def list(self, tenant_id: UUID, payment_id: UUID, *, limit: int, cursor: str | None) -> Page[Refund]:
        """Newest first. Raises `ValidationFailed` for a malformed cursor."""
        ...

    def add(self, refund: Refund) -> None: ...

    def save(self, refund: Refund) -> None: ...


class DeadLetters(Protocol):
    """Work that ended in failure, kept for inspection and re-drive (`payments dlq`)."""

    def add(self, letter: DeadLetter) -> None: ...

    async def list(self, *, limit: int) -> builtins.list[DeadLetter]:
        """Newest first, every tenant (an operator's view)."""
        ...

    async def get(self, letter_id: UUID) -> DeadLetter | None: ...

    def mark_retried(self, letter: DeadLetter) -> None: ...


class Webhooks(Protocol):
    """A tenant's webhook subscriptions and their deliveries.

    `add`, `save`, `remove` and `save_delivery` are buffered until commit;
    `lock`/`lock_delivery` take row locks until the unit of work ends; `fan_out`
    writes at once, inside the unit of work's transaction.
    """

    async def get(self, tenant_id: UUID, subscription_id: UUID) -> Subscription | None: ...

    async def lock(self, tenant_id: UUID, subscription_id: UUID) -> Subscription | None: ...

    async def list(self, tenant_id: UUID, *, limit: int, cursor: str | None) -> Page[Subscription]:
        """Newest first. Raises `ValidationFailed` for a malformed cursor."""
        ...

    def add(self, subscription: Subscription) -> None: ...

    def save(self, subscription: Subscription) -> None: ...

    def remove(self, subscription: Subscription) -> None:
        """Delete the subscription and its delivery log at commit."""
        ...

    async def listening(self, tenant_id: UUID, event_type: str) -> builtins.list[Subscription]:
        """The tenant's enabled subscriptions that hear `event_type`."""
        ...

    async def fan_out(self, deliveries: builtins.list[Delivery]) -> builtins.list[DeliveryRef]:
        """Insert those of `deliveries` whose subscription has no delivery of that event yet (a
        redelivered event fans out once); the refs of the ones inserted."""
        ...

    async def lock_delivery(self, tenant_id: UUID, delivery_id: UUID) -> Delivery | None: ...

    async def deliveries(
        self, tenant_id: UUID, subscription_id: UUID, *, limit: int, cursor: str | None
    ) -> Page[Delivery]:
        """Newest first. Raises `ValidationFailed` for a malformed cursor."""
        ...

    def save_delivery(self, delivery: Delivery) -> None: ...


class DueDeliveries(Protocol):
    """Pending webhook deliveries whose next attempt is due, for the scheduler."""

    async def claim_due(self, now: datetime, lease_seconds: float, limit: int) -> builtins.list[DeliveryRef]:
        """Up to `limit` pending deliveries due by `now`, oldest first, each held for `lease_seconds`
        doubled for each time it was queued since its last attempt began, up to 32 times (its next attempt
        time moves there, so concurrent schedulers never take the same one, and a backlog in the queue is
        not queued again every lease)."""
        ...


class WebhookSender(Protocol):
    """POSTs a delivery. Never raises for the receiver's failures: they come back in `SendResult`."""

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], *, within: float) -> SendResult:
        """A 2xx within `within` seconds is success; any other status, a timeout, a refused connection or
        a destination the SSRF guard refuses is a `SendResult` with `error` set."""
        ...


class Resolver(Protocol):
    """Name resolution for the SSRF guard."""

    async def resolve(self, host: str) -> builtins.list[str]:
        """The IP addresses `host` resolves to (itself if it is one); empty if it does not resolve."""
        ...


class Outbox(Protocol):
    """Messages committed with their change and published afterwards, at least once."""

    def add(self, message: OutboxMessage) -> None: ...


class IdempotencyKeys(Protocol):
    """Stored first responses per (tenant, key).

    `claim` makes the unit of work the only one working on the key until it ends
    (raising `IdempotencyRequestInProgress` if another one holds it) and returns
    the live stored response, if any. `add` is buffered and written by commit;
    committing a second record for a live key raises `IdempotencyRequestInProgress`
    and writes nothing.
    """

    async def claim(self, request: IdempotentRequest, now: datetime) -> IdempotencyRecord | None: ...

    def add(self, record: IdempotencyRecord) -> None: ...


class Tenants(Protocol):
    """Tenants and API keys."""

    async def get_or_create(self, name: str, now: datetime) -> Tenant: ...

    async def key_by_hash(self, key_hash: bytes) -> ApiKey | None: ...

    def add_key(self, key: ApiKey) -> None: ...


class UnitOfWork(Protocol):
    """One database transaction and the repositories that use it.

    Used as `async with factory() as uow:`; it rolls back unless `commit` ran.
    `commit` raises `ConcurrencyConflict` on a serialization failure or deadlock
    (the whole unit of work may then be retried) and `Unavailable` when the store
    cannot be reached.
    """

    @property
    def accounts(self) -> Accounts: ...

    @property
    def ledger(self) -> Ledger: ...

    @property
    def payments(self) -> Payments: ...

    @property
    def outbox(self) -> Outbox: ...

    @property
    def idempotency(self) -> IdempotencyKeys: ...

    @property
    def tenants(self) -> Tenants: ...

    @property
    def refunds(self) -> Refunds: ...

    @property
    def dead_letters(self) -> DeadLetters: ...

    @property
    def webhooks(self) -> Webhooks: ...

    async def __aenter__(self) -> UnitOfWork: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    """Makes units of work; `read_only` ones may skip the transaction and cannot commit."""

    def __call__(self, *, read_only: bool = False) -> UnitOfWork: ...


class ClaimedOutbox(Protocol):
    """A batch of unpublished outbox messages, locked so no other relay takes them."""

    @property
    def messages(self) -> Sequence[OutboxMessage]: ...

    def mark_published(self) -> None:
        """Record the batch as published when the claim ends without error."""
        ...


class OutboxFeed(Protocol):
    """Unpublished outbox messages, oldest first.

    `claim(limit)` is an async context manager holding up to `limit` rows that no
    concurrent claim can see (rows a crashed claimer held become visible again);
    rows marked published are never claimed again.
    """

    def claim(self, limit: int) -> AbstractAsyncContextManager[ClaimedOutbox]: ...


class TaskQueue(Protocol):
    """The message broker the workers consume; delivery is at least once."""

    async def publish_events(self, messages: Sequence[OutboxMessage]) -> None:
        """Enqueue one event task per message, identified by the message id, and the work
        (`core.events.work_for`) a message asks for. Raises `Unavailable`."""
        ...

    async def enqueue_work(self, items: Sequence[WorkItem], *, delay_seconds: float = 0.0) -> None:
        """Enqueue work, to run no sooner than `delay_seconds` from now. Raises `Unavailable`."""
        ...

    async def enqueue_deliveries(self, refs: Sequence[DeliveryRef], *, delay_seconds: float = 0.0) -> None:
        """Enqueue one webhook delivery attempt per ref, to run no sooner than `delay_seconds` from now.
        Raises `Unavailable`."""
        ...


class Locks(Protocol):
    """Short-lived cross-process locks with an owner token and a time to live.

    `acquire` returns a fresh token, or None while another owner holds the name.
    `extend` and `release` act only if the token still owns the name (a lock
    that expired and was taken by someone else is never extended or released by
    its old owner) and say whether they did. They coordinate workers; they never
    alone protect a balance. Raise `Unavailable` when the store cannot be reached.
    """

    async def acquire(self, name: str, ttl_seconds: float) -> str | None: ...

    async def extend(self, name: str, token: str, ttl_seconds: float) -> bool: ...

    async def release(self, name: str, token: str) -> bool: ...


class InFlight(Protocol):
    """Payments and refunds not yet finished, for the housekeeping job that re-enqueues stuck work."""

    async def stuck(self, before: datetime, limit: int) -> list[WorkItem]:
        """Pending/processing payments and pending refunds untouched since `before` (and not
        scheduled for a later retry), oldest first."""
        ...


class Lease(Protocol):
    """A named lease in the database, so one process at a time runs a periodic job."""

    async def acquire(self, name: str, owner: str, ttl_seconds: float) -> int | None:
        """The fencing token if `owner` holds (or now takes) the lease, else None."""
        ...

    async def reap_idempotency_keys(self, name: str, owner: str, token: int, limit: int) -> int:
        """Delete up to `limit` expired idempotency records while the lease is still ours; how many went."""
        ...

    async def purge_published_outbox(self, name: str, owner: str, token: int, before: datetime, limit: int) -> int:
        """Delete up to `limit` outbox rows published before `before` while the lease is ours; how many went."""
        ...


class LedgerAudit(Protocol):
    """Verifies the invariants of API.md §4 over the whole store."""

    async def drift(self) -> list[str]:
        """One human-readable line per broken invariant; empty when the ledger is sound."""
        ...

"""Webhook subscriptions and deliveries (API.md §7): who hears which events, and every attempt to tell them."""

from __future__ import annotations

import enum
import json
import random
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import attrs

from core.commands import Command
from core.errors import FieldError, ValidationFailed
from core.events import ALL_EVENTS, CATALOGUE, hears

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
MAX_DESCRIPTION_LENGTH = 1000


class DeliveryStatus(enum.StrEnum):
    """A delivery is pending until one attempt succeeds or its attempts are spent (or it is given up)."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@attrs.frozen
class PreviousSecret:
    """A rotated-out secret that still signs deliveries until `expires_at`."""

    secret: str
    expires_at: datetime


#: Rotated-out secrets kept at once (each still signing for its overlap).
MAX_PREVIOUS_SECRETS = 5


@attrs.define(kw_only=True)
class Subscription:
    """An endpoint that hears some events of one tenant, and the secrets that sign what it is sent."""

    id: UUID
    tenant_id: UUID
    url: str
    events: tuple[str, ...]
    description: str | None
    enabled: bool
    secret: str
    previous_secrets: tuple[PreviousSecret, ...] = ()
    created_at: datetime
    updated_at: datetime

    @property
    def previous_secrets_expire_at(self) -> datetime | None:
        """When the last rotated-out secret stops signing (None if there never was one)."""
        return max((p.expires_at for p in self.previous_secrets), default=None)

    def matches(self, event_type: str) -> bool:
        """Whether an event of this type is sent here (`*` means every event of the catalogue)."""
        return self.enabled and hears(self.events, event_type)

    def signing_secrets(self, now: datetime) -> list[str]:
        """The secrets a delivery made `now` is signed with: the current one, and each rotated-out one
        whose overlap has not ended."""
        return [self.secret, *(p.secret for p in reversed(self.previous_secrets) if p.expires_at > now)]

    def rotate(self, new_secret: str, now: datetime, overlap: timedelta) -> None:
        """Sign with `new_secret` from now on; the current secret keeps signing too for `overlap`, and so do
        earlier rotated-out ones for what is left of theirs (rotating twice does not cut the first one short)."""
        live = tuple(p for p in self.previous_secrets if p.expires_at > now)[-(MAX_PREVIOUS_SECRETS - 1):]
        self.previous_secrets = (*live, PreviousSecret(self.secret, now + overlap))
        self.secret, self.updated_at = new_secret, now

    def change(self, *, url: str | None, events: tuple[str, ...] | None, enabled: bool | None,
               description: str | None, clear_description: bool, now: datetime) -> None:
        """Apply a partial update; None leaves a field as it is."""
        self.url = self.url if url is None else url
        self.events = self.events if events is None else events
        self.enabled = self.enabled if enabled is None else enabled
        if description is not None or clear_description:
            self.description = description
        self.updated_at = now


@attrs.frozen(kw_only=True)
class DeliveryPolicy:
    """How deliveries are retried: `max_attempts` POSTs, waiting `min_backoff` doubling up to `max_backoff`."""

    max_attempts: int = 21
    min_backoff: float = 60.0
    max_backoff: float = 6 * 3600.0
    timeout: float = 5.0
    #: An attempt under way holds its delivery this long: if the worker dies mid-POST, it is retried after it.
    lease: float = 60.0
    #: How long a rotated-out secret still signs deliveries.
    rotation_overlap: float = 24 * 3600.0
    #: Each wait is shortened by up to this fraction at random, so that deliveries that failed together
    #: (a receiver's outage) do not all come back at the same moment.
    jitter: float = 0.2

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based), before jitter."""
        return float(min(self.max_backoff, self.min_backoff * 2 ** min(attempt - 1, 62)))

    def wait_after(self, attempt: int) -> float:
        """The backoff after attempt `attempt`, less up to `jitter` of it at random."""
        return self.backoff(attempt) * (1.0 - self.jitter * random.random())

    def schedule(self) -> list[float]:
        """Every wait between the first attempt and the last (the default spans about three days)."""
        return [self.backoff(n) for n in range(1, self.max_attempts)]


@attrs.frozen(kw_only=True)
class DeliveryRef(Command):
    """Enough to ask a worker to make attempt `attempt + 1` of one delivery (a stale ref is ignored)."""

    id: UUID
    attempt: int
    trace_context: dict[str, str] = attrs.field(factory=dict)


#: The most delivery refs one `deliver_webhook` message carries: a worker claims, POSTs and records them together.
DELIVERY_BATCH = 50


def delivery_batches(refs: Sequence[DeliveryRef], size: int = DELIVERY_BATCH) -> list[list[DeliveryRef]]:
    """`refs` in order, in groups of at most `size` (one message each)."""
    return [list(refs[start:start + size]) for start in range(0, len(refs), size)]


@attrs.define(kw_only=True)
class Delivery:
    """One event on its way to one subscription; the same event id and body on every attempt."""

    id: UUID
    tenant_id: UUID
    subscription_id: UUID
    event_id: UUID
    event_type: str
    body: str
    status: DeliveryStatus = attrs.field(default=DeliveryStatus.PENDING, converter=DeliveryStatus)
    attempts: int = 0
    last_status_code: int | None = None
    last_error: str | None = None
    next_attempt_at: datetime | None
    delivered_at: datetime | None = None
    correlation_id: str | None = None
    trace_context: dict[str, str] = attrs.field(factory=dict)
    #: A redelivery by hand lets it make attempts up to this number, even past the policy's limit.
    granted_through: int = 0
    #: How often the scheduler queued it since its last attempt began (each time it waits longer).
    queued: int = 0
    created_at: datetime
    updated_at: datetime

    def spent(self, policy: DeliveryPolicy) -> bool:
        """Whether every attempt it may make has been made."""
        return self.attempts >= max(policy.max_attempts, self.granted_through)

    def ref(self) -> DeliveryRef:
        return DeliveryRef(id=self.id, tenant_id=self.tenant_id, attempt=self.attempts,
                           correlation_id=self.correlation_id, trace_context=self.trace_context)

    def begin_attempt(self, now: datetime, policy: DeliveryPolicy) -> None:
        """Count the attempt before it is made, and hold the delivery for the lease (a crash retries it then)."""
        self.attempts += 1
        self.next_attempt_at = now + timedelta(seconds=policy.lease)
        self.queued, self.updated_at = 0, now

    def release_attempt(self, now: datetime) -> None:
        """Take back an attempt counted by `begin_attempt` but never made (no webhook slot freed in time): the
        claim's lease still holds it, and the message that requeued its ref makes that attempt."""
        self.attempts, self.updated_at = self.attempts - 1, now

    def succeeded(self, status_code: int, now: datetime) -> None:
        self.status, self.last_status_code, self.last_error = DeliveryStatus.SUCCEEDED, status_code, None
        self.next_attempt_at, self.delivered_at, self.updated_at = None, now, now

    def attempt_failed(
        self, status_code: int | None, error: str, now: datetime, policy: DeliveryPolicy
    ) -> float | None:
        """Record a failed attempt; the seconds until the next one, or None once the attempts are spent."""
        self.last_status_code, self.last_error, self.updated_at = status_code, error[:1000], now
        if self.spent(policy):
            self.status, self.next_attempt_at = DeliveryStatus.FAILED, None
            return None
        wait = policy.wait_after(self.attempts)
        self.next_attempt_at = now + timedelta(seconds=wait)
        return wait

    def give_up(self, error: str, now: datetime) -> None:
        self.status, self.last_error, self.next_attempt_at, self.updated_at = DeliveryStatus.FAILED, error, None, now

    def redeliver(self, now: datetime) -> None:
        """Send it again as soon as a worker can, whatever its status, with at least one attempt left.

        One that had spent its attempts gets exactly one more (the API needs no knowledge of the workers'
        limit); one given up early (its webhook was disabled) resumes its schedule. Asking again before
        that attempt grants nothing more."""
        self.granted_through = self.attempts + 1
        self.status, self.next_attempt_at, self.queued, self.updated_at = DeliveryStatus.PENDING, now, 0, now


def webhook_body(event_id: str, event_type: str, created_at: str, data: Any) -> str:
    """The JSON a delivery POSTs: `{"id": event_id, "type", "created_at", "data": {"object": ...}}`."""
    return json.dumps({"id": event_id, "type": event_type, "created_at": created_at, "data": data},
                      separators=(",", ":"), ensure_ascii=False)


def check_events(events: Sequence[Any], field: str = "events") -> tuple[str, ...]:
    """Event names from the catalogue, or `*`; at least one, no duplicates kept."""
    if not isinstance(events, Sequence) or isinstance(events, str) or not events:
        raise ValidationFailed([FieldError(field, "must be a non-empty list of event names, or [\"*\"]")])
    unknown = [str(name) for name in events if name != ALL_EVENTS and name not in CATALOGUE]
    if unknown:
        raise ValidationFailed([FieldError(field, f"unknown event(s) {', '.join(unknown[:5])}; expected * or "
                                                  f"one of {', '.join(CATALOGUE)}")])
    return tuple(dict.fromkeys(str(name) for name in events))


@attrs.frozen(kw_only=True)
class SendResult:
    """What one POST got: a status code, or an error (timeout, refused connection, refused address)."""

    status_code: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def new_secret() -> str:
    """A fresh signing secret, `whsec_` and 256 random bits."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)

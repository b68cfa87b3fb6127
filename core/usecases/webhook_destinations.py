"""Vet the URL a webhook subscription is to be sent to: well formed and, unless allowed, public."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from urllib.parse import urlsplit

import attrs

from core.errors import FieldError, ValidationFailed
from core.idempotency import IdempotentRequest
from core.ports import Clock, Resolver, UnitOfWorkFactory
from core.webhook_destinations import check_url, refused_addresses


async def check_destination(url: str, *, resolver: Resolver, allow_private: bool) -> None:
    """Refuse a URL that is malformed or (unless allowed) resolves to a private, loopback or link-local address.

    Run it before the unit of work opens: name resolution can take a moment.
    """
    check_url(url)
    if allow_private:
        return
    host = urlsplit(url).hostname or ""
    addresses = await resolver.resolve(host)
    if not addresses:
        raise ValidationFailed([FieldError("url", f"the host {host!r} does not resolve")])
    if refused := refused_addresses(addresses):
        raise ValidationFailed([FieldError("url", f"{host!r} resolves to a private, loopback or link-local "
                                                  f"address ({refused[0]}); such URLs are refused unless "
                                                  "PAYMENTS_WEBHOOKS_ALLOW_PRIVATE_URLS=true")])


#: A stored response replays only with this much of its life left (else it may expire before the replay runs).
REPLAY_MARGIN = timedelta(minutes=1)


@attrs.frozen(kw_only=True)
class VetDestination:
    url: str
    request: IdempotentRequest | None  # the Idempotency-Key of the request naming the URL, if it has one
    allow_private: bool


async def vet_destination(
    cmd: VetDestination,
    *,
    uow_factory: UnitOfWorkFactory,
    resolver: Resolver,
    clock: Clock,
    parse_url: Callable[[str], object],
) -> None:
    """Refuse (`ValidationFailed`) a URL the sender's own `parse_url` refuses, or that `check_destination` refuses.

    Skipped when the request's key already holds a response to this same request with time left to
    replay it: the replay must be the first answer, whatever the host resolves to now. A key that a
    running request holds raises `IdempotencyRequestInProgress`.
    """
    if cmd.request is not None:
        now = clock.now()
        async with uow_factory() as uow:  # a transaction scopes the claim's lock to this look
            stored = await uow.idempotency.claim(cmd.request, now)
        # a different request under the key is refused when the write runs
        if (stored is not None and stored.request.fingerprint == cmd.request.fingerprint
                and stored.expires_at > now + REPLAY_MARGIN):
            return
    parse_url(cmd.url)
    await check_destination(cmd.url, resolver=resolver, allow_private=cmd.allow_private)

"""Helpers of the secrets-at-rest tests: services on a database of the test's own with chosen keys, a webhook
created (and its secret rotated) as the API does it, a real delivery, a dump of every row, the CLI."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from uuid import UUID

import attrs
import psycopg

from app.bootstrap import Services, bootstrap
from app.configuration import load_settings
from core.idempotency import IdempotentRequest, StoredResponse
from core.ids import new_id
from core.signatures import InvalidSignature, verify_signature
from core.usecases.idempotency import run_idempotent
from core.usecases.webhook_attempts import DeliveryOutcome, deliver_webhook
from core.usecases.webhook_delivery import FanOut, fan_out_event
from core.usecases.webhooks import CreateSubscription, create_subscription, rotate_secret
from core.views import webhook_view
from core.webhooks import DeliveryRef
from tests.conftest import ROOT
from tests.receiver import Receiver

EVENT = "payment.completed"


@contextlib.asynccontextmanager
async def services_with(database_url: str, redis_url: str, keys: str) -> AsyncIterator[Services]:
    """Services whose `PAYMENTS_SECRETS_KEYS` is `keys`, sending webhooks to local receivers."""
    settings = load_settings({"PAYMENTS_SECRETS_KEYS": keys, "PAYMENTS_WEBHOOKS_ALLOW_PRIVATE_URLS": "true"})
    services = await bootstrap(settings, database_url, redis_url)
    try:
        yield services
    finally:
        await services.aclose()


@attrs.frozen
class Hook:
    """A subscription as its creator saw it: the secrets the API showed, and its stored responses' keys."""

    tenant_id: UUID
    id: UUID
    secret: str  # the current one (shown by rotate-secret)
    previous: str  # the one shown at creation, still signing for the overlap
    keys: tuple[str, str]  # the Idempotency-Keys of the create and of the rotate


async def _idempotent(services: Services, request: IdempotentRequest, work: Any) -> dict[str, Any]:
    """Run `work` as the HTTP layer does with an Idempotency-Key: the response, secret included, is stored."""
    response = await run_idempotent(
        work, request=request, uow_factory=services.uow_factory, clock=services.clock, ttl=timedelta(hours=24),
        render=lambda s: StoredResponse(status=200, body=json.dumps(webhook_view(s, with_secret=True)).encode()),
        render_error=lambda error: StoredResponse(status=400, body=b"{}"))
    shown: dict[str, Any] = json.loads(response.body)
    return shown


async def create_hook(services: Services, url: str, tenant: str | None = None) -> Hook:
    """A subscription of `tenant` (a new one by default) created, then its secret rotated, each with an
    Idempotency-Key."""
    async with services.uow_factory() as uow:
        tenant_id = (await uow.tenants.get_or_create(tenant or f"secrets-{new_id()}", services.clock.now())).id
    keys = (f"create-{new_id()}", f"rotate-{new_id()}")
    cmd = CreateSubscription(tenant_id=tenant_id, url=url, events=(EVENT,))
    created = await _idempotent(services, IdempotentRequest(tenant_id=tenant_id, key=keys[0], fingerprint=b"c"),
                                lambda uow: create_subscription(cmd, uow=uow, clock=services.clock))
    hook_id = UUID(created["id"])
    rotated = await _idempotent(services, IdempotentRequest(tenant_id=tenant_id, key=keys[1], fingerprint=b"r"),
                                lambda uow: rotate_secret(tenant_id, hook_id, uow=uow, clock=services.clock,
                                                          overlap=timedelta(hours=24)))
    assert created["secret"].startswith("whsec_") and rotated["secret"] != created["secret"]
    return Hook(tenant_id, hook_id, rotated["secret"], created["secret"], keys)


async def replayed_secret(services: Services, hook: Hook) -> str:
    """The secret in the stored response of the rotate, replayed (the work must not run again)."""
    request = IdempotentRequest(tenant_id=hook.tenant_id, key=hook.keys[1], fingerprint=b"r")

    async def never(uow: Any) -> Any:
        raise AssertionError("a replay runs nothing")

    shown = await _idempotent(services, request, never)
    return str(shown["secret"])


async def fan_out(services: Services, hook: Hook) -> DeliveryRef:
    """An event fanned out to the tenant's only subscription: its delivery, pending."""
    event = FanOut(tenant_id=hook.tenant_id, event_id=new_id(), event_type=EVENT,
                   created_at=services.clock.now().isoformat(), data={"object": {"id": "p"}})
    (ref,) = await fan_out_event(event, uow_factory=services.uow_factory, clock=services.clock,
                                 policy=services.settings.webhooks.policy())
    return ref


async def attempt(services: Services, ref: DeliveryRef) -> DeliveryOutcome:
    return await deliver_webhook(ref, uow_factory=services.uow_factory, sender=services.webhook_sender,
                                 clock=services.clock, policy=services.settings.webhooks.policy())


async def deliver(services: Services, hook: Hook) -> DeliveryOutcome:
    """Fan an event out to the tenant's subscription and make the first attempt of its delivery."""
    return await attempt(services, await fan_out(services, hook))


def verifies(receiver: Receiver, path: str, secret: str) -> bool:
    """Whether the last request `path` received is signed with `secret`."""
    last = receiver.at(path)[-1]
    try:
        return verify_signature(secret, last.headers["payments-signature"], last.body)
    except InvalidSignature:
        return False


def dump(database_url: str) -> str:
    """Every row of every table of the database as text (bytea decoded), as a dump would show it."""
    lines = []
    with psycopg.connect(database_url) as conn:
        tables = [row[0] for row in conn.execute(
            "SELECT quote_ident(table_name) FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'")]
        for table in tables:
            for row in conn.execute(f"SELECT * FROM {table}"):  # names from the catalogue
                lines.append(" ".join(v.decode(errors="replace") if isinstance(v, bytes) else json.dumps(v, default=str)
                                      for v in row))
    return "\n".join(lines)


def payments(database_url: str, redis_url: str, keys: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    """`payments ARGS` against the database, with `PAYMENTS_SECRETS_KEYS=keys` (None: unset)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMENTS_")}
    env.update(PAYMENTS_DATABASE_URL=database_url, PAYMENTS_REDIS_URL=redis_url,
               PAYMENTS_OBSERVABILITY_LOG_LEVEL="warning")
    if keys is not None:
        env["PAYMENTS_SECRETS_KEYS"] = keys
    return subprocess.run([sys.executable, "-m", "payments", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)

"""Secrets at rest on real PostgreSQL and the real CLI: a dump of the database shows no webhook signing secret,
yet deliveries are signed with the secrets the API showed; secrets stored in plain text before migration 0007
stay readable until `payments secrets rotate` encrypts them.

Rotating the key (docs/operations.md): create under key A, put B first and keep A, `payments secrets rotate`,
drop A: every secret still decrypts and deliveries verify. With only an unrelated key nothing decrypts, and
everyone says so naming PAYMENTS_SECRETS_KEYS: the API answers 503 (never 500), a delivery waits with its
attempts unspent, the CLI lists the rows, and `serve` and `worker` refuse to start."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from yoyo import get_backend, read_migrations

from adapters.crypto import new_key, parse_keys
from adapters.postgres.migrate import MIGRATIONS, apply_migrations, yoyo_url
from core.errors import Unavailable
from core.ids import new_id
from core.webhooks import new_secret
from tests.conftest import SECRETS_KEYS, fresh_database, new_api_key
from tests.e2e.conftest import start_api
from tests.integration.secrets_stack import (
    EVENT,
    Hook,
    attempt,
    create_hook,
    deliver,
    dump,
    fan_out,
    payments,
    replayed_secret,
    services_with,
    verifies,
)
from tests.receiver import Receiver

KEY_A, KEY_B, KEY_C = new_key(), new_key(), new_key()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def own_database(admin_database_url: str) -> Iterator[str]:
    """A database of the test's own: its dump holds this test's rows only, and rotation changes no one else's."""
    with fresh_database(admin_database_url) as url:
        yield url


async def test_a_dump_shows_no_secret_yet_deliveries_are_signed_with_the_secrets_shown(
    own_database: str, redis_url: str, receiver: Receiver
) -> None:
    async with services_with(own_database, redis_url, SECRETS_KEYS) as services:
        hook = await create_hook(services, receiver.url("/dump"))
        outcome = await deliver(services, hook)
        assert outcome.result == "succeeded", outcome
        # signed with the secret rotate-secret showed, and with the one creation showed (still in its overlap)
        assert verifies(receiver, "/dump", hook.secret) and verifies(receiver, "/dump", hook.previous)
        assert not verifies(receiver, "/dump", new_secret())
        assert await replayed_secret(services, hook) == hook.secret  # the stored response opens again
        async with services.uow_factory(read_only=True) as uow:
            stored = await uow.webhooks.get(hook.tenant_id, hook.id)
        assert stored is not None and stored.secret == hook.secret
        assert [p.secret for p in stored.previous_secrets] == [hook.previous]

    rows = dump(own_database)
    assert str(hook.id) in rows and hook.keys[0] in rows and hook.keys[1] in rows  # the rows are in the dump...
    for secret in (hook.secret, hook.previous):  # ...their secrets are not, nor any part of them
        assert secret not in rows and secret.removeprefix("whsec_") not in rows
    assert "whsec_" not in rows
    with psycopg.connect(own_database) as conn:
        (secret, previous), = conn.execute(
            "SELECT secret, previous_secrets FROM webhook_subscriptions WHERE id = %s", [hook.id])
        assert secret.startswith("gAAAAA") and previous[0]["secret"].startswith("gAAAAA")  # Fernet tokens
        sealed = conn.execute("SELECT key FROM idempotency_keys WHERE response_sealed").fetchall()
        assert sorted(key for key, in sealed) == sorted(hook.keys)


async def test_the_database_refuses_a_secret_written_in_plain_text(own_database: str, redis_url: str) -> None:
    async with services_with(own_database, redis_url, SECRETS_KEYS) as services:
        hook = await create_hook(services, "https://example.com/hook")
    with psycopg.connect(own_database) as conn:
        with pytest.raises(psycopg.errors.CheckViolation, match="webhook_secrets_sealed"):
            conn.execute("UPDATE webhook_subscriptions SET secret = %s WHERE id = %s", [new_secret(), hook.id])
        conn.rollback()
        plain = [{"secret": new_secret(), "expires_at": "2030-01-01T00:00:00+00:00"}]
        with pytest.raises(psycopg.errors.CheckViolation, match="webhook_secrets_sealed"):
            conn.execute("UPDATE webhook_subscriptions SET previous_secrets = %s WHERE id = %s",
                         [json.dumps(plain), hook.id])
        conn.rollback()
        with pytest.raises(psycopg.errors.CheckViolation, match="idempotency_secrets_sealed"):
            conn.execute("UPDATE idempotency_keys SET response_body = %s, response_sealed = false WHERE key = %s",
                         [json.dumps({"secret": new_secret()}).encode(), hook.keys[0]])


def _before_0007(url: str) -> None:
    backend = get_backend(yoyo_url(url))
    with backend.lock():
        backend.apply_migrations(backend.to_apply(read_migrations(str(MIGRATIONS)).filter(lambda m: m.id < "0007")))


async def test_plain_text_secrets_from_before_migration_0007_are_read_then_encrypted_by_rotate(
    admin_database_url: str, redis_url: str, receiver: Receiver
) -> None:
    tenant_id, hook_id, now = new_id(), new_id(), datetime.now(UTC)
    hook = Hook(tenant_id, hook_id, new_secret(), new_secret(), ("create-old", "rotate-old"))
    with fresh_database(admin_database_url, migrate=_before_0007) as url:
        with psycopg.connect(url) as conn:  # rows as the release before this one wrote them
            conn.execute("INSERT INTO tenants (id, name) VALUES (%s, 'legacy')", [tenant_id])
            conn.execute("INSERT INTO webhook_subscriptions (id, tenant_id, url, events, enabled, secret, "
                         "previous_secrets, created_at, updated_at) VALUES (%s, %s, %s, %s, true, %s, %s, %s, %s)",
                         [hook_id, tenant_id, receiver.url("/legacy"), [EVENT], hook.secret,
                          json.dumps([{"secret": hook.previous, "expires_at": (now + timedelta(hours=1)).isoformat()}]),
                          now, now])
            conn.execute("INSERT INTO idempotency_keys (tenant_id, key, fingerprint, status_code, response_body, "
                         "created_at, expires_at) VALUES (%s, %s, 'r', 200, %s, %s, %s)",
                         [tenant_id, hook.keys[1], json.dumps({"id": str(hook_id), "secret": hook.secret}).encode(),
                          now, now + timedelta(hours=24)])
        apply_migrations(url)

        async with services_with(url, redis_url, SECRETS_KEYS) as services:  # readable as they are
            assert (await deliver(services, hook)).result == "succeeded"
            assert verifies(receiver, "/legacy", hook.secret) and verifies(receiver, "/legacy", hook.previous)
            assert await replayed_secret(services, hook) == hook.secret
        assert hook.secret in dump(url)

        check = payments(url, redis_url, SECRETS_KEYS, "secrets", "check")
        assert check.returncode == 1 and "3 in plain text" in check.stdout, check
        rotate = payments(url, redis_url, SECRETS_KEYS, "secrets", "rotate")
        assert rotate.returncode == 0, rotate
        assert "re-encrypted 3 stored secret(s)" in rotate.stdout and "3 in plain text" in rotate.stdout
        assert "whsec_" not in dump(url)
        with psycopg.connect(url) as conn:  # no plain text is left: rotate validated migration 0007's checks
            assert conn.execute("SELECT bool_and(convalidated) FROM pg_constraint WHERE conname IN "
                                "('webhook_secrets_sealed', 'idempotency_secrets_sealed')").fetchone() == (True,)

        async with services_with(url, redis_url, SECRETS_KEYS) as services:
            assert (await deliver(services, hook)).result == "succeeded"
            assert verifies(receiver, "/legacy", hook.secret) and verifies(receiver, "/legacy", hook.previous)
            assert await replayed_secret(services, hook) == hook.secret
        again = payments(url, redis_url, SECRETS_KEYS, "secrets", "check")
        assert again.returncode == 0 and "3 stored secret(s) under the first key" in again.stdout, again


async def test_rotating_the_key_keeps_every_secret_readable_and_every_delivery_verifiable(
    own_database: str, redis_url: str, receiver: Receiver
) -> None:
    db = own_database
    async with services_with(db, redis_url, KEY_A) as a:
        hooks = [await create_hook(a, receiver.url(f"/hook-{n}")) for n in range(3)]
    # 1. every process is given B first and A second: what A sealed still opens, what is written now B seals
    async with services_with(db, redis_url, f"{KEY_B},{KEY_A}") as both:
        assert (await deliver(both, hooks[0])).result == "succeeded"
        assert verifies(receiver, "/hook-0", hooks[0].secret)
        hooks.append(await create_hook(both, receiver.url("/hook-3")))
    # each hook holds 4 sealed values: its secret, the rotated-out one, the two stored responses showing them
    before = payments(db, redis_url, f"{KEY_B},{KEY_A}", "secrets", "check")
    assert before.returncode == 1, before
    assert "4 stored secret(s) under the first key" in before.stdout and "12 under an older key" in before.stdout
    # 2. the rotation re-encrypts what A sealed under B
    rotated = payments(db, redis_url, f"{KEY_B},{KEY_A}", "secrets", "rotate")
    assert rotated.returncode == 0, rotated
    assert "re-encrypted 12 stored secret(s)" in rotated.stdout and "4 already were" in rotated.stdout
    # 3. A is removed: nothing needs it any more
    after = payments(db, redis_url, KEY_B, "secrets", "check")
    assert after.returncode == 0 and "16 stored secret(s) under the first key" in after.stdout, after
    async with services_with(db, redis_url, KEY_B) as b:
        for n, hook in enumerate(hooks):
            assert (await deliver(b, hook)).result == "succeeded"
            assert verifies(receiver, f"/hook-{n}", hook.secret) and verifies(receiver, f"/hook-{n}", hook.previous)
            assert await replayed_secret(b, hook) == hook.secret


async def test_with_an_unrelated_key_nothing_decrypts_and_every_part_says_why(
    own_database: str, redis_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    db = own_database
    async with services_with(db, redis_url, KEY_A) as a:
        old = await create_hook(a, receiver.url("/old"), tenant="unrelated-key")
        pending = await fan_out(a, old)

    async with services_with(db, redis_url, KEY_C) as c:
        async with c.uow_factory(read_only=True) as uow:
            with pytest.raises(Unavailable, match="cannot be decrypted"):
                await uow.webhooks.get(old.tenant_id, old.id)
        with pytest.raises(Unavailable):
            await attempt(c, pending)  # the worker's attempt fails before it counts: Dramatiq retries it later
        async with c.uow_factory(read_only=True) as uow:
            (waiting,) = (await uow.webhooks.deliveries(old.tenant_id, old.id, limit=5, cursor=None)).items
        assert waiting.status == "pending" and waiting.attempts == 0
        with pytest.raises(Unavailable):
            await replayed_secret(c, old)

    for command in (["secrets", "check"], ["secrets", "rotate"]):
        answer = payments(db, redis_url, KEY_C, *command)
        assert answer.returncode == 1 and f"UNREADABLE webhook_subscriptions/{old.id}" in answer.stdout, answer
        assert "cannot be decrypted with any key of PAYMENTS_SECRETS_KEYS" in answer.stdout
    for command in ("serve", "worker"):  # they refuse to start rather than fail every webhook
        refused = payments(db, redis_url, KEY_C, command)
        assert refused.returncode != 0 and "invalid configuration: PAYMENTS_SECRETS_KEYS" in refused.stderr, refused
        assert "cannot be decrypted" in refused.stderr
    unset = payments(db, redis_url, None, "serve")
    assert unset.returncode != 0 and "PAYMENTS_SECRETS_KEYS: not set" in unset.stderr, unset
    assert "payments secrets new-key" in unset.stderr
    made = payments(db, redis_url, None, "secrets", "new-key")
    assert made.returncode == 0 and len(parse_keys(made.stdout)) == 1, made

    # Written under C since (the newest secret, so the API starts), the old row still unreadable: the API
    # answers that one 503 problem+json, and the other one as usual.
    async with services_with(db, redis_url, KEY_C) as c:
        new = await create_hook(c, receiver.url("/new"), tenant="unrelated-key")
        key = await new_api_key(c, tenant="unrelated-key")
    base_url, api = start_api(db, redis_url, tmp_path / "api.log", PAYMENTS_SECRETS_KEYS=KEY_C)
    try:
        async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {key}"}) as client:
            broken = await client.get(f"/api/v1/webhooks/{old.id}")
            assert broken.status_code == 503, broken.text
            assert broken.headers["content-type"].startswith("application/problem+json")
            assert broken.json()["type"].endswith("service_unavailable") and "PAYMENTS" not in broken.text
            assert (await client.get(f"/api/v1/webhooks/{new.id}")).status_code == 200
    finally:
        api.stop()
    assert "cannot be decrypted with any key of PAYMENTS_SECRETS_KEYS" in api.output()  # the operator is told

    async with services_with(db, redis_url, f"{KEY_C},{KEY_A}") as fixed:  # A given back: the delivery resumes
        outcome = await attempt(fixed, pending)
        assert outcome.result == "succeeded" and outcome.attempt == 1
        assert verifies(receiver, "/old", old.secret)

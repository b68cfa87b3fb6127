"""Webhook signing secrets at rest in PostgreSQL: how a stored one is opened and sealed, and the re-sealing of
every stored secret under the current key (`payments secrets rotate`; `payments secrets check` only counts).

Two places hold a secret: a subscription's row (its secret and the rotated-out ones still signing), and the
stored response of a create or rotate-secret request sent with an Idempotency-Key (replayed for 24 h).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import asyncpg
import attrs
from loguru import logger

from adapters.crypto import SecretBox, SecretsKeyError
from adapters.postgres.pool import translate_errors
from core.errors import Unavailable
from core.webhooks import SECRET_PREFIX

BATCH = 200
_NIL = UUID(int=0)
SUBSCRIPTIONS = "SELECT id, secret, previous_secrets FROM webhook_subscriptions WHERE id > $1 ORDER BY id LIMIT $2"
UPDATE_SUBSCRIPTION = "UPDATE webhook_subscriptions SET secret = $2, previous_secrets = $3 WHERE id = $1"
# rows holding a secret: sealed, or (written before migration 0007) showing "whsec_" in plain text
RESPONSES = r"""SELECT tenant_id, key, response_body, response_sealed FROM idempotency_keys
WHERE (tenant_id, key) > ($1, $2) AND (response_sealed OR position('\x77687365635f'::bytea IN response_body) > 0)
ORDER BY tenant_id, key LIMIT $3"""
UPDATE_RESPONSE = """UPDATE idempotency_keys SET response_body = $3, response_sealed = true
WHERE tenant_id = $1 AND key = $2"""
# the secret written last: the one most likely sealed under the newest key (checked at start-up)
NEWEST_SEALED = r"""SELECT id, secret FROM webhook_subscriptions WHERE secret NOT LIKE 'whsec\_%'
ORDER BY updated_at DESC LIMIT 1"""
UNVALIDATED = """SELECT conrelid::regclass::text AS "table", conname FROM pg_constraint
WHERE conname IN ('webhook_secrets_sealed', 'idempotency_secrets_sealed') AND NOT convalidated"""


def subscription_context(subscription_id: UUID) -> str:
    return f"webhook_subscriptions/{subscription_id}"


def response_context(tenant_id: UUID, key: str) -> str:
    return f"idempotency_keys/{tenant_id}/{key}"


def is_plain(stored: str) -> bool:
    """Written in plain text before migration 0007: readable as it is until `payments secrets rotate` seals it."""
    return stored.startswith(SECRET_PREFIX)


def open_secret(box: SecretBox, stored: str, subscription_id: UUID) -> str:
    return stored if is_plain(stored) else box.open(stored, subscription_context(subscription_id))


def seal_secret(box: SecretBox, secret: str, subscription_id: UUID) -> str:
    return box.seal(secret, subscription_context(subscription_id))


@contextmanager
def key_errors() -> Iterator[None]:
    """A key missing or wrong is the operator's to fix: logged as an error naming the setting, and answered
    `Unavailable` (503; a delivery that needs the secret waits, its attempts unspent, until the key is right)."""
    try:
        yield
    except SecretsKeyError as error:
        logger.error("{}", error)
        raise Unavailable("a stored webhook signing secret cannot be decrypted by the server (its encryption "
                          "key is misconfigured); try again later") from None


@attrs.define
class SealReport:
    """Stored secrets by the key they were found under (`reseal` moved `older` and `plain` to the first key)."""

    current: int = 0
    older: int = 0  # under another configured key
    plain: int = 0  # plain text from before migration 0007
    unreadable: list[str] = attrs.field(factory=list)  # where no configured key opens the value (left as it is)

    @property
    def settled(self) -> bool:
        """Everything under the first key: the other keys can be removed."""
        return not (self.older or self.plain or self.unreadable)


class PgSealedSecrets:
    """Every stored secret, batch by batch in short transactions (rows being re-sealed are locked meanwhile)."""

    def __init__(self, pool: asyncpg.Pool, box: SecretBox) -> None:
        self._pool, self._box = pool, box

    async def survey(self) -> SealReport:
        """Count the stored secrets by the key they are under; change nothing."""
        return await self._walk(rewrite=False)

    async def check_newest(self) -> None:
        """Raise `SecretsKeyError` if no configured key opens the secret written last (a wrong key deployed):
        a process refuses to start rather than fail every webhook."""
        with translate_errors():
            row = await self._pool.fetchrow(NEWEST_SEALED)
        if row is not None:
            open_secret(self._box, row["secret"], row["id"])

    async def reseal(self) -> SealReport:
        """Seal under the first key every stored secret sealed under another key or kept in plain text; then
        validate migration 0007's checks (no plain text is left). Raises `SecretsKeyError` with no key."""
        self._box.seal("", "probe")  # no key configured: refuse before reading anything
        report = await self._walk(rewrite=True)
        with translate_errors():
            for row in await self._pool.fetch(UNVALIDATED):
                await self._pool.execute(f'ALTER TABLE {row["table"]} VALIDATE CONSTRAINT {row["conname"]}')
        return report

    async def _walk(self, *, rewrite: bool) -> SealReport:
        report = SealReport()
        await self._batches(SUBSCRIPTIONS, UPDATE_SUBSCRIPTION, start=(_NIL,), key=lambda r: (r["id"],),
                            fix=lambda r: self._subscription(r, report), rewrite=rewrite)
        await self._batches(RESPONSES, UPDATE_RESPONSE, start=(_NIL, ""), key=lambda r: (r["tenant_id"], r["key"]),
                            fix=lambda r: self._response(r, report), rewrite=rewrite)
        return report

    async def _batches(
        self, select: str, update: str, *, start: tuple[Any, ...], key: Callable[[asyncpg.Record], tuple[Any, ...]],
        fix: Callable[[asyncpg.Record], list[Any] | None], rewrite: bool,
    ) -> None:
        """Keyset pages of `select` from `start`; with `rewrite`, each page locked and its fixed rows updated."""
        after = start
        while True:
            with translate_errors():
                async with self._pool.acquire() as conn, conn.transaction():
                    rows = await conn.fetch(select + (" FOR UPDATE" if rewrite else ""), *after, BATCH)
                    changed = [values for row in rows if (values := fix(row)) is not None]
                    if rewrite and changed:
                        await conn.executemany(update, changed)
            if len(rows) < BATCH:
                return
            after = key(rows[-1])

    def _subscription(self, row: asyncpg.Record, report: SealReport) -> list[Any] | None:
        context, previous = subscription_context(row["id"]), row["previous_secrets"]
        stored = [row["secret"], *(p["secret"] for p in previous)]
        fixed = [self._value(value, is_plain(value), context, report) for value in stored]
        if all(value is None for value in fixed):
            return None
        values = [new or old for new, old in zip(fixed, stored, strict=True)]
        return [row["id"], values[0], [{**p, "secret": v} for p, v in zip(previous, values[1:], strict=True)]]

    def _response(self, row: asyncpg.Record, report: SealReport) -> list[Any] | None:
        body = self._value(bytes(row["response_body"]).decode(), not row["response_sealed"],
                           response_context(row["tenant_id"], row["key"]), report)
        return None if body is None else [row["tenant_id"], row["key"], body.encode()]

    def _value(self, stored: str, plain: bool, context: str, report: SealReport) -> str | None:
        """`stored` sealed under the first key, if it is not already (None: current, or unreadable); counted."""
        if plain:
            report.plain += 1
            return self._box.seal(stored, context) if self._box.configured else None
        try:
            value = self._box.open(stored, context)
        except SecretsKeyError:
            report.unreadable.append(context)
            return None
        if self._box.is_current(stored):
            report.current += 1
            return None
        report.older += 1
        return self._box.seal(value, context)


"""`payments secrets new-key | rotate | check`, and the key that `serve`, `worker` and `dev` need to start."""

from __future__ import annotations

import argparse
import asyncio

import attrs
from loguru import logger

from adapters.crypto import KEYS_SETTING, SecretsKeyError, new_key, read_or_create_key
from app.bootstrap import Endpoints, Services, bootstrap, data_dir
from app.settings import Settings, SettingsError

#: Where the embedded development stack keeps its key, beside the database it encrypts.
KEY_FILE = "secrets_key"
#: How long start-up waits to check the key against the database before starting anyway.
CHECK_TIMEOUT = 5.0


def settings_with_key(settings: Settings, command: str) -> Settings:
    """The settings `command` runs with: `PAYMENTS_SECRETS_KEYS` as configured; unset, the key kept in the data
    directory for the embedded development stack (`dev`, or any command on the embedded database); refused
    otherwise, since processes that each made up a key would not read each other's secrets."""
    if settings.secrets.keys:
        return settings
    if command == "dev" or not settings.database.dsn():
        key = read_or_create_key(data_dir(settings) / KEY_FILE)
        return attrs.evolve(settings, secrets=attrs.evolve(settings.secrets, keys=key))
    raise SettingsError(f"{KEYS_SETTING}: not set, and `payments {command}` needs it: webhook signing secrets are "
                        "stored encrypted with it. Create a key with `payments secrets new-key` and give every "
                        "process the same value (docs/operations.md)")


def check_key_opens(settings: Settings, endpoints: Endpoints) -> None:
    """Refuse to start (`SettingsError`) when no configured key decrypts the secret written last: a wrong key
    deployed would fail every webhook. A database that does not answer yet is no reason to refuse (the
    process starts and answers 503 meanwhile), so that is only logged."""

    async def run() -> None:
        services = await bootstrap(settings, endpoints.database_url, endpoints.redis_url)
        try:
            await asyncio.wait_for(services.sealed_secrets.check_newest(), CHECK_TIMEOUT)
        finally:
            await services.aclose()

    try:
        asyncio.run(run())
    except SecretsKeyError as error:
        raise SettingsError(f"{KEYS_SETTING}: {error}") from None
    except Exception as error:  # the database is down or not migrated yet: readiness says so
        logger.warning("could not check {} against the stored secrets: {}: {}", KEYS_SETTING,
                       type(error).__name__, error)


def cmd_new_key() -> int:
    print(new_key())
    return 0


def cmd_secrets(settings: Settings, endpoints: Endpoints, args: argparse.Namespace) -> int:
    """`rotate`: re-encrypt every stored secret under the first key; `check`: say which key each is under."""

    async def run(services: Services) -> int:
        rotate = args.secrets_command == "rotate"
        report = await (services.sealed_secrets.reseal() if rotate else services.sealed_secrets.survey())
        moved = report.older + report.plain
        if rotate:
            print(f"re-encrypted {moved} stored secret(s) under the first key of {KEYS_SETTING} "
                  f"({report.older} were under an older key, {report.plain} in plain text); "
                  f"{report.current} already were")
        else:
            print(f"{report.current} stored secret(s) under the first key of {KEYS_SETTING}, {report.older} under "
                  f"an older key, {report.plain} in plain text, {len(report.unreadable)} that no key decrypts")
        for where in report.unreadable:
            print(f"UNREADABLE {where}")
        if report.unreadable:
            print(f"{len(report.unreadable)} stored secret(s) cannot be decrypted with any key of {KEYS_SETTING} "
                  "(left as they are): add the key that encrypted them and run this again")
            return 1
        if rotate or report.settled:
            print("every stored secret is under the first key" + (
                " now: once every process runs with it first, the other keys can be removed" if rotate else
                ": the other keys can be removed"))
            return 0
        print("run `payments secrets rotate` before removing any key")
        return 1

    async def main() -> int:
        services = await bootstrap(settings, endpoints.database_url, endpoints.redis_url)
        try:
            return await run(services)
        finally:
            await services.aclose()

    return asyncio.run(main())

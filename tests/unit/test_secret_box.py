"""The cipher of secrets at rest (adapters/crypto.py), its setting, and the key each command starts with."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.crypto import SecretBox, SecretsKeyError, new_key, parse_keys, read_or_create_key
from app.configuration import load_settings
from app.settings import SettingsError
from payments.encryption import KEY_FILE, settings_with_key

A, B, C = new_key(), new_key(), new_key()
SECRET = "whsec_" + "s" * 43
HERE = "webhook_subscriptions/1"


def test_a_sealed_secret_opens_to_itself_and_shows_nothing_of_it() -> None:
    box = SecretBox([A])
    sealed = box.seal(SECRET, HERE)
    assert box.open(sealed, HERE) == SECRET
    assert "whsec_" not in sealed and "sss" not in sealed and HERE not in sealed
    assert box.seal(SECRET, HERE) != sealed  # a fresh IV each time: equal secrets do not look equal


def test_the_first_key_seals_and_every_key_opens() -> None:
    under_a = SecretBox([A]).seal(SECRET, HERE)
    both = SecretBox([B, A])
    assert both.open(under_a, HERE) == SECRET and not both.is_current(under_a)
    under_b = both.seal(SECRET, HERE)
    assert both.is_current(under_b) and SecretBox([B]).open(under_b, HERE) == SECRET
    with pytest.raises(SecretsKeyError):
        SecretBox([A]).open(under_b, HERE)  # what B sealed needs B


def test_an_unrelated_key_opens_nothing_and_the_error_names_the_setting() -> None:
    sealed = SecretBox([A]).seal(SECRET, HERE)
    with pytest.raises(SecretsKeyError, match="PAYMENTS_SECRETS_KEYS") as refused:
        SecretBox([C]).open(sealed, HERE)
    assert HERE in str(refused.value) and A not in str(refused.value) and C not in str(refused.value)


def test_a_secret_moved_to_another_row_does_not_open_there() -> None:
    box = SecretBox([A])
    with pytest.raises(SecretsKeyError, match="encrypted for another row"):
        box.open(box.seal(SECRET, HERE), "webhook_subscriptions/2")


def test_a_tampered_secret_does_not_open() -> None:
    box = SecretBox([A])
    sealed = box.seal(SECRET, HERE)
    tampered = sealed[:-8] + ("A" if sealed[-8] != "A" else "B") + sealed[-7:]
    with pytest.raises(SecretsKeyError):
        box.open(tampered, HERE)


def test_without_a_key_nothing_is_sealed_or_opened_and_the_setting_is_named() -> None:
    box = SecretBox([])
    assert not box.configured
    with pytest.raises(SecretsKeyError, match="PAYMENTS_SECRETS_KEYS is not set"):
        box.seal(SECRET, HERE)
    with pytest.raises(SecretsKeyError, match="PAYMENTS_SECRETS_KEYS is not set"):
        box.open(SecretBox([A]).seal(SECRET, HERE), HERE)
    assert not box.is_current("anything")


def test_keys_are_comma_separated_blanks_ignored_and_a_bad_one_is_named_by_position_only() -> None:
    assert parse_keys(f" {B} , {A},, ") == (B, A)
    assert parse_keys("") == ()
    with pytest.raises(ValueError, match="key 2 of 2 is not a Fernet key") as refused:
        parse_keys(f"{A},not-a-key-at-all")
    assert "not-a-key-at-all" not in str(refused.value)


def test_the_setting_refuses_a_bad_key_by_name_and_never_shows_a_key() -> None:
    with pytest.raises(SettingsError, match=r"^PAYMENTS_SECRETS_KEYS: key 1 of 1") as refused:
        load_settings({"PAYMENTS_SECRETS_KEYS": A[:-4]})
    assert A[:-4] not in str(refused.value)
    settings = load_settings({"PAYMENTS_SECRETS_KEYS": f"{B},{A}"})
    assert settings.secrets.keys == f"{B},{A}" and A not in repr(settings) and B not in repr(settings)


def test_a_key_file_is_made_once_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "data" / KEY_FILE
    key = read_or_create_key(path)
    assert parse_keys(key) == (key,) and path.stat().st_mode & 0o777 == 0o600
    assert read_or_create_key(path) == key


def test_serve_and_worker_on_a_configured_database_need_the_key(tmp_path: Path) -> None:
    configured = load_settings({"PAYMENTS_DATABASE_URL": "postgresql://db/payments",
                                "PAYMENTS_DATA_DIR": str(tmp_path)})
    for command in ("serve", "worker", "secrets"):
        with pytest.raises(SettingsError, match=r"^PAYMENTS_SECRETS_KEYS: not set") as refused:
            settings_with_key(configured, command)
        assert "payments secrets new-key" in str(refused.value)
    assert not (tmp_path / KEY_FILE).exists()
    given = load_settings({"PAYMENTS_DATABASE_URL": "postgresql://db/payments", "PAYMENTS_SECRETS_KEYS": A})
    assert settings_with_key(given, "serve") is given


def test_the_embedded_stack_keeps_its_key_in_the_data_directory(tmp_path: Path) -> None:
    embedded = load_settings({"PAYMENTS_DATA_DIR": str(tmp_path)})
    first = settings_with_key(embedded, "serve").secrets.keys
    assert parse_keys(first) == (first,) and (tmp_path / KEY_FILE).read_text().strip() == first
    assert settings_with_key(embedded, "worker").secrets.keys == first  # a restart opens what it sealed
    # `payments dev` makes one for its children even on a configured database
    dev = load_settings({"PAYMENTS_DATABASE_URL": "postgresql://db/payments", "PAYMENTS_DATA_DIR": str(tmp_path)})
    assert settings_with_key(dev, "dev").secrets.keys == first

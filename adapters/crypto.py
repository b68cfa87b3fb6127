"""Secrets at rest: values sealed with Fernet (authenticated encryption) under the keys of PAYMENTS_SECRETS_KEYS.

The first key seals; every key opens, so a key is rotated by putting a new one first, re-sealing what is
stored (`payments secrets rotate`) and only then removing the old one (docs/operations.md). Each value is
sealed together with a context naming where it is stored (its table and row): a sealed value copied into
another row does not open there.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

#: The setting holding the keys, named in every error an operator has to act on.
KEYS_SETTING = "PAYMENTS_SECRETS_KEYS"
_SEPARATOR = b"\x00"  # between the context and the value inside the sealed payload


class SecretsKeyError(Exception):
    """No key is configured, or no configured key opens a stored value (its key was removed or replaced,
    or the value was moved to another row): the operator's to fix, never the client's."""


def new_key() -> str:
    """A fresh random key (32 bytes, URL-safe base64), as `payments secrets new-key` prints it."""
    return Fernet.generate_key().decode()


def parse_keys(text: str) -> tuple[str, ...]:
    """The comma-separated keys of `text` (blanks ignored), newest first; `ValueError` for one that is not
    a key. The message says which one by position, never its value."""
    keys = tuple(part.strip() for part in text.split(",") if part.strip())
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError:
            raise ValueError(f"key {position} of {len(keys)} is not a Fernet key (32 bytes in URL-safe base64; "
                             "`payments secrets new-key` makes one)") from None
    return keys


def read_or_create_key(path: Path) -> str:
    """The key kept in `path` (for the embedded development stack), created readable by its owner only
    the first time, so that a restart opens what the previous run sealed."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it meanwhile: use theirs
            pass
        else:
            with os.fdopen(fd, "w") as file:
                file.write(new_key() + "\n")
    return ",".join(parse_keys(path.read_text()))


class SecretBox:
    """Seals and opens stored secrets with the configured keys (none: both refuse, naming the setting)."""

    def __init__(self, keys: Sequence[str]) -> None:
        self._fernets = [Fernet(key) for key in keys]
        self._all = MultiFernet(self._fernets) if self._fernets else None

    @property
    def configured(self) -> bool:
        return self._all is not None

    def seal(self, value: str, context: str) -> str:
        """`value` encrypted and authenticated under the first key, bound to `context`."""
        return self._keys().encrypt(context.encode() + _SEPARATOR + value.encode()).decode()

    def open(self, sealed: str, context: str) -> str:
        """The value `seal(value, context)` sealed, under any configured key; `SecretsKeyError` otherwise."""
        try:
            payload = self._keys().decrypt(sealed.encode())
        except InvalidToken:
            raise SecretsKeyError(f"a stored secret ({context}) cannot be decrypted with any key of {KEYS_SETTING}: "
                                  "the key that encrypted it was removed or replaced (docs/operations.md, "
                                  "'Rotating the secrets key')") from None
        bound, _, value = payload.partition(_SEPARATOR)
        if bound != context.encode():
            raise SecretsKeyError(f"the secret stored in {context} was encrypted for another row: "
                                  "it was copied or tampered with")
        return value.decode()

    def is_current(self, sealed: str) -> bool:
        """Whether `sealed` is under the first key (else `payments secrets rotate` still has to re-seal it)."""
        try:
            self._keys()
            self._fernets[0].decrypt(sealed.encode())
        except (InvalidToken, SecretsKeyError):
            return False
        return True

    def _keys(self) -> MultiFernet:
        if self._all is None:
            raise SecretsKeyError(f"{KEYS_SETTING} is not set: there is no key to encrypt or decrypt stored "
                                  "secrets with (`payments secrets new-key` makes one)")
        return self._all
